"""Training configuration (one dataclass: the CLI fills it, notebooks build it directly)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

__all__ = ["AMP_MODES", "TrainConfig", "parse_views"]

AMP_MODES = ("none", "bf16", "fp16")


def parse_views(views: str) -> Tuple[int, int]:
    """"4x3" -> (4 temporal clips, 3 spatial crops)."""
    try:
        clips, crops = (int(v) for v in str(views).lower().split("x"))
    except ValueError:
        raise ValueError(f"views must look like 4x3 (temporal clips x spatial crops), got {views!r}") from None
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"views {views!r}: need >= 1 temporal clip and 1 or 3 spatial crops")
    return clips, crops


@dataclass
class TrainConfig:
    """Args:
        model: registry name (``vidbench list``).
        data: dataset directory (``vidbench make-dataset`` or any with a manifest / splits).
        out: results directory (checkpoint, train.csv, accuracy.csv).
        batch_size: per process; under torchrun the global batch is batch_size x processes.
        lr, min_lr: AdamW peak LR after linear warm-up, and the end of the cosine decay.
        clip_grad: max global gradient norm (0: off).
        amp: autocast "none", "bf16" (CPU or GPU) or "fp16" (GPU, with a gradient scaler).
        bad_items: "skip" (warn, count, report) or "raise" for unusable videos and annotation lines.
        init: image ViT checkpoint (vidbench.checkpoint.save_checkpoint) to initialise from; the
            video model then takes the image model's width, depth, heads, patch and image size.
        weights: published weights of the model itself (any format `vidbench.weights` reads) to
            fine-tune from: the model takes the checkpoint's config, frames, image size and
            normalisation unless num_frames / size say otherwise; a head of another class count
            is replaced. `model` may then be None (the checkpoint says which).
        weights_format: force the weights' format instead of detecting it.
        init_mode: tubelet rule for `from_image_backbone`: central_frame, inflation or random.
        init_label: the `init` column (default: the checkpoint's "method" metadata, else its file name).
        num_frames, stride, sampling, size: clip overrides (default: the dataset's manifest).
        model_kwargs: further model config overrides (depth, embed_dim, drop_path_rate, ...).
        val_views: views for the per-epoch validation; eval_views: if set, a test-split evaluation
            after training with these views, written to accuracy.csv.
        resume: continue from the checkpoint in `out`.
    """

    model: Optional[str]
    data: str
    out: str
    epochs: int = 12
    batch_size: int = 16
    lr: float = 5e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    clip_grad: float = 1.0
    amp: str = "none"
    num_workers: int = 2
    seed: int = 0
    backend: Optional[str] = None
    bad_items: str = "skip"
    init: Optional[str] = None
    init_mode: str = "central_frame"
    init_label: Optional[str] = None
    weights: Optional[str] = None
    weights_format: Optional[str] = None
    num_frames: Optional[int] = None
    stride: Optional[int] = None
    sampling: Optional[str] = None
    size: Optional[int] = None
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    val_views: str = "1x1"
    eval_views: Optional[str] = None
    device: str = "auto"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.init and self.weights:
            raise ValueError("give either init (an image backbone) or weights (the model's own), not both")
        if not self.model and not self.weights:
            raise ValueError("give a model (registry name) or weights to fine-tune")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        parse_views(self.val_views)
        if self.eval_views:
            parse_views(self.eval_views)
