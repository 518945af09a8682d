"""The options of the training and evaluation jobs, one dataclass each: `TrainConfig` (vidbench
train), `EvalConfig` (vidbench eval), and `TrainingOptions`, the fields every training loop takes
(`vidbench.ssl.train.PretrainConfig` extends it too). Their fields are the vocabulary's concepts
(`vidbench.options`: FRAMES, PRECISION, DEVICE, ...) with the jobs' own defaults and help; the
CLI flags and the suite's [train] section are generated from them; notebooks build them directly."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..errors import ConfigError
from ..options import (
    BAD_ITEMS,
    DECODER,
    DEVICE,
    FRAMES,
    IMG_SIZE,
    PRECISIONS,
    PROGRESS,
    SEED,
    WEIGHTS,
    WEIGHTS_FORMAT,
    WORKERS,
    Alias,
    accepts_aliases,
    check_choice,
    check_fields,
    option,
    precision_option,
)

__all__ = ["PRECISIONS", "TrainingOptions", "TrainConfig", "EvalConfig", "parse_views", "precision_option"]

INIT_MODES = ("central_frame", "inflation", "random")


def parse_views(views: str) -> Tuple[int, int]:
    """"4x3" -> (4 temporal clips, 3 spatial crops)."""
    try:
        clips, crops = (int(v) for v in str(views).lower().split("x"))
    except ValueError:
        raise ConfigError(f"views must look like 4x3 (temporal clips x spatial crops), got {views!r}") from None
    if clips < 1 or crops not in (1, 3):
        raise ConfigError(f"views {views!r}: need >= 1 temporal clip and 1 or 3 spatial crops")
    return clips, crops


# -- the training loops ---------------------------------------------------------------------------
@accepts_aliases
@dataclass
class TrainingOptions:
    """What every training loop takes: the optimiser (AdamW; no weight decay on biases, norms and
    what the model's ``no_weight_decay()`` names), the per-step schedule (linear warm-up, cosine
    decay), autocast, gradient clipping, data loading, seed and device. The video loop
    (`TrainConfig`) and SSL pretraining (`vidbench.ssl.train.PretrainConfig`) extend it, each
    with its own recipe's defaults."""

    epochs: int = option(12, positive=True, help="passes over the training set")
    batch_size: int = option(16, positive=True, help="clips (images) per step and process; under torchrun the global batch is "
                                      "batch_size x processes")
    lr: float = option(5e-4, gt=0, help="AdamW peak learning rate, reached at the end of the warm-up")
    min_lr: float = option(1e-5, ge=0, help="learning rate at the end of the cosine decay")
    weight_decay: float = option(0.05, ge=0, help="AdamW weight decay (biases, norms, tokens and embeddings spared)")
    warmup_epochs: float = option(2.0, ge=0, help="linear warm-up, in epochs (fractions allowed)")
    clip_grad: float = option(1.0, ge=0, aliases=[Alias("grad_clip")], help="max global gradient norm (0: off)")
    precision: str = precision_option()
    num_workers: int = WORKERS(2)
    seed: int = SEED(help="random seed (initialisation, data order, augmentation)")
    device: str = DEVICE()
    progress: bool = PROGRESS()

    def check_training(self, min_batch: int = 1) -> None:
        """Values every loop needs (a ConfigError names the option): each field's own
        (`vidbench.options.check_fields`), then those between fields."""
        check_fields(self)
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr {self.min_lr:g} is above lr {self.lr:g}: the cosine decay goes from lr down "
                              "to min_lr")
        if self.epochs < 1 or self.batch_size < min_batch:
            raise ConfigError(f"need epochs >= 1 and batch_size >= {min_batch}, got {self.epochs}, {self.batch_size}")
        if self.clip_grad < 0 or self.warmup_epochs < 0 or self.num_workers < 0:
            raise ConfigError(f"clip_grad, warmup_epochs and num_workers must be >= 0, got {self.clip_grad}, "
                              f"{self.warmup_epochs}, {self.num_workers}")


@accepts_aliases
@dataclass
class TrainConfig(TrainingOptions):
    """`vidbench train`: a video model trained on a clip dataset (single process or torchrun).

    `init` initialises from an image ViT checkpoint (vidbench.checkpoint.save_checkpoint): the
    video model then takes the image model's width, depth, heads, patch and image size. `weights`
    fine-tunes from published weights of the model itself (any format `vidbench.weights` reads):
    the model takes the checkpoint's config, frames, image size and normalisation unless `frames`
    / `img_size` say otherwise, and a head of another class count is replaced; `model` may then
    be None. `eval_views`: a test-split evaluation after training, into accuracy.csv.
    """

    model: Optional[str] = option(None, help="registry name, e.g. vivit_m2_tiny (optional with --weights)")
    data: str = option("data/synthetic", help="dataset directory (vidbench make-dataset's, or any with a manifest "
                                              "or split annotations)")
    out: str = option("", required=True, help="results directory (checkpoint, train.csv, accuracy.csv), "
                                              "e.g. results/m2")
    label_smoothing: float = option(0.1, ge=0, lt=1, help="cross-entropy label smoothing")
    backend: Optional[str] = DECODER()
    bad_items: str = BAD_ITEMS()
    init: Optional[str] = option(None, help="image ViT checkpoint (.safetensors written by vidbench.checkpoint, e.g. "
                                            "vidbench pretrain's) to initialise from")
    init_mode: str = option("central_frame", choices=INIT_MODES, help="tubelet rule of from_image_backbone")
    init_label: Optional[str] = option(None, help="the init column [the checkpoint's 'method' metadata, else its "
                                                  "file name]")
    weights: Optional[str] = WEIGHTS(help="fine-tune from published weights of the model itself (any supported "
                                          "format; frames, size and normalisation follow the checkpoint unless given)")
    weights_format: Optional[str] = WEIGHTS_FORMAT()
    frames: Optional[int] = FRAMES(help="clip frames [the dataset's]")
    stride: Optional[int] = option(None, help="frame stride of dense sampling [the dataset's]")
    sampling: Optional[str] = option(None, choices=("dense", "uniform"), help="clip sampling [the dataset's]")
    img_size: Optional[int] = IMG_SIZE(help="crop side [the dataset's, or the --init model's]")
    model_kwargs: Dict[str, Any] = option(default_factory=dict, flag="model-arg", metavar="KEY=VALUE",
                                          help="model config override, repeatable (depth=4, tubelet_size=2,8,8)")
    val_views: str = option("1x1", help="views of the per-epoch validation")
    eval_views: Optional[str] = option(None, help="after training, evaluate the test split with these views, "
                                                  "e.g. 4x3")
    resume: bool = option(False, help="continue the run in --out (its options must be the run's)")

    def __post_init__(self) -> None:
        self.check_options()
        if not self.out:
            raise ConfigError("give out, the results directory")
        if self.init and self.weights:
            raise ConfigError("give either init (an image backbone) or weights (the model's own), not both")
        if not self.model and not self.weights:
            raise ConfigError("give a model (registry name) or weights to fine-tune")

    def check_options(self) -> None:
        """The values, whatever job they end up in (a suite checks its [train] section with this)."""
        self.check_training()
        check_choice("init_mode", self.init_mode, INIT_MODES)
        parse_views(self.val_views)
        if self.eval_views:
            parse_views(self.eval_views)


# -- evaluation -------------------------------------------------------------------------------------
@accepts_aliases
@dataclass
class EvalConfig:
    """`vidbench eval`: multi-view accuracy of a `checkpoint` trained by vidbench train (with its
    clip settings) or of published `weights` in any supported format (with their own
    preprocessing and views unless overridden); rank 0 appends the row to accuracy.csv."""

    checkpoint: Optional[str] = option(None, help="a vidbench train checkpoint, e.g. results/m2/checkpoint.safetensors")
    weights: Optional[str] = WEIGHTS(help="published weights: a file or a Hugging Face directory")
    model: Optional[str] = option(None, help="registry name for --weights formats without a config")
    weights_format: Optional[str] = WEIGHTS_FORMAT()
    data: Optional[str] = option(None, help="dataset directory [for --checkpoint: the one it was trained on]")
    views: Optional[str] = option(None, help="temporal clips x spatial crops (1 or 3), e.g. 4x3 [the weights' "
                                             "published views, else 4x3]")
    split: Optional[str] = option(None, help="split to evaluate [test, else val (said when so)]")
    frames: Optional[int] = FRAMES(help="--weights: clip frames, time embeddings resized [the weights']")
    stride: Optional[int] = option(None, help="--weights: frame stride [the weights']")
    img_size: Optional[int] = IMG_SIZE(help="--weights: crop size, position embeddings resized [the weights']")
    out: Optional[str] = option(None, help="results directory [the checkpoint's; results/pretrained for --weights]")
    predict: Optional[str] = option(None, help="also write each video's top-5 classes and scores (views averaged) "
                                               "to this new CSV; the one output for a split without labels")
    batch_size: int = option(8, positive=True, help="videos per batch (each with all its views)")
    num_workers: int = WORKERS(2)
    backend: Optional[str] = DECODER()
    bad_items: str = BAD_ITEMS()
    precision: str = precision_option()
    device: str = DEVICE()
    progress: bool = PROGRESS()

    DEFAULT_VIEWS = "4x3"

    def __post_init__(self) -> None:
        check_fields(self)
        if bool(self.checkpoint) == bool(self.weights):
            raise ConfigError("give one of checkpoint (vidbench train's) or weights (published)")
        if self.weights and not self.data:
            raise ConfigError("--weights needs --data")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.views:
            parse_views(self.views)
