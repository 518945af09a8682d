"""vidbench's models side by side with another library's implementation of the same family
(`vidbench compare`): timm's ViT, torchvision's MViT v1 / MViTv2-S / Video Swin, mmaction2's
MViTv2-B, Hugging Face's TimeSformer, ViViT, VideoMAE (V1 ViT-B and the VideoMAE V2 distilled
ViT-B config), VideoPrism and V-JEPA 2, and hiera-transformer's Hiera.

For each family both models are built at the same config: the reference library's model from its
own config object (no download), every weight perturbed away from its initial value, and vidbench's
model built and loaded from the reference's state dict through the published-weights converter of
that library (`vidbench.weights.formats`), so the two compute the same function. One run then
reports, per implementation and mode (infer; train = forward, backward, AdamW step):

- the largest |difference| of the logits on the same clip (eval mode),
- clips/s and step time (median, IQR), timed in interleaved rounds (vidbench, reference,
  vidbench, ...) so that load drift on a shared machine hits both alike,
- peak memory: on CPU in a fresh process per implementation and mode (`python -m
  vidbench.bench.compare`), peak RSS above the RSS before the model was built; on CUDA the
  allocator's peak in this process. The method is in each row's `mem_method`. The CPU memory
  processes run glibc malloc with a fixed 64 KiB mmap threshold (MALLOC_MMAP_THRESHOLD_, unless
  set already): with glibc's default dynamic threshold, freed blocks of up to 32 MiB stay in the
  heap and the peak RSS of the same model varied by up to 10% between runs; with it, large blocks
  go back on free, and the peak is that of live memory, repeatable to the MiB.

A library that is not installed gives rows with status "skipped" and the reason. Rows go to
`<out>/compare.csv` (vidbench.results.ResultsStore) as each family and mode finishes, with
environment.json; an existing table is never added to.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import gc
import importlib
import importlib.util
import inspect
import json
import os
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from ..options import BATCH_SIZE, DEVICE, FRAMES, IMG_SIZE, PRECISION, SEED, THREADS, option
from ..results import ResultsStore, run_lock
from .memory import PeakMemory, current_rss_bytes, release_free_heap, warm_runtime
from .process import report, run_worker
from .summary import cell, status_cell, text_table
from .throughput import MODES, PRECISIONS, Timing, make_step, time_steps

__all__ = ["COMPARE_COLUMNS", "CompareConfig", "FAMILIES", "Family", "build_pair", "compare_family", "run_compare"]

TABLE = "compare"
RESULT_PREFIX = "VIDBENCH_COMPARE "
MMAP_ENV, MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_", 64 << 10  # glibc malloc's mmap threshold (bytes) in the CPU memory processes
COMPARE_COLUMNS = (
    "model", "impl", "reference", "library", "library_version", "mode", "frames", "img_size", "batch_size",
    "precision", "device", "threads", "params", "max_abs_logit_diff", "clips_per_s", "step_ms_median",
    "step_ms_iqr", "speedup_vs_reference", "peak_mem_mb", "mem_method", "rounds", "iters", "warmup", "status",
    "error", "timestamp",
)


@dataclass(frozen=True)
class Family:
    """A vidbench model and the other library's implementation of it.

    build(frames, img_size, overrides): the reference model, randomly initialised, from the
    library's config objects (overrides: config fields, e.g. a tiny depth for tests).
    source(model): (Source kind, config dict or None) handed to the weights format with the
    reference's state dict. forward(model, x): logits of vidbench's (B, C, T, H, W) clip.
    key: the name `vidbench compare` takes and the rows' `model` (default: `model`), for a second
    reference config of one registry model (VideoMAE V2's distilled ViT-B is videomae_base).
    load: imports the library and returns a module with its `__version__` (default: import
    `library`), for a library that its package's `__init__` cannot import (mmaction2).
    """

    model: str
    library: str  # the importable module that must be installed
    reference: str  # what is built, for the rows
    format: str  # the vidbench.weights format converting its state dict
    frames: Optional[int]  # the paper config's clip (None: an image model)
    img_size: int
    build: Callable[[Optional[int], int, Dict[str, Any]], nn.Module]
    source: Callable[[nn.Module], Tuple[str, Optional[Dict[str, Any]]]]
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    accepts: Optional[Callable[[], Set[str]]] = None  # the override names `build` takes (--reference-arg)
    key: Optional[str] = None
    load: Optional[Callable[[], Any]] = None

    @property
    def name(self) -> str:
        return self.key or self.model


def _timm_vit(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
    import timm

    return timm.create_model("vit_base_patch16_224", pretrained=False, img_size=img, **over)


def _hf(config_cls: str, model_cls: str, frames_key: str = "num_frames", size_key: str = "image_size"):
    def build(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
        import transformers

        cfg = getattr(transformers, config_cls)(**{"num_labels": 400, size_key: img, frames_key: frames, **over})
        return getattr(transformers, model_cls)(cfg)

    return build


def _hf_vjepa2(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
    """HF's V-JEPA 2 classifier without its predictor: the pre-training head the classifier holds
    but never runs (~22M parameters at ViT-L), which would count in its parameters and memory."""
    model = _hf("VJEPA2Config", "VJEPA2ForVideoClassification", "frames_per_clip", "crop_size")(frames, img, over)
    del model.vjepa2.predictor
    return model


def _hf_videoprism_call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values_videos=x.transpose(1, 2)).logits.squeeze(1)  # HF's VideoPrism logits are (B, 1, classes)


def _tv_mvit(builder: str):
    def build(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
        from unittest import mock

        from torchvision.models.video import mvit

        inner = mvit._mvit

        def sized(**kwargs: Any) -> nn.Module:  # the builders fix 16 x 224: keep their block table, not the size
            return inner(**{**kwargs, "spatial_size": (img, img), "temporal_size": frames})

        with mock.patch.object(mvit, "_mvit", sized):
            return getattr(mvit, builder)(weights=None, stochastic_depth_prob=0.0, **over)

    return build


def _init_args(cls: Any, *fixed: str) -> Set[str]:
    return {n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "args", "kwargs", *fixed)}


def _timm_vit_args() -> Set[str]:
    from timm.models.vision_transformer import VisionTransformer

    return _init_args(VisionTransformer, "img_size")


def _hf_args(config_cls: str) -> Callable[[], Set[str]]:
    def accepts() -> Set[str]:
        import transformers

        return set(getattr(transformers, config_cls)().to_dict()) | {"num_labels"}

    return accepts


def _tv_mvit_args() -> Set[str]:
    from torchvision.models.video import mvit

    return _init_args(mvit.MViT, "spatial_size", "temporal_size", "block_setting", "stochastic_depth_prob")


def _tv_swin_args() -> Set[str]:
    from torchvision.models.video import swin_transformer

    return _init_args(swin_transformer.SwinTransformer3d)


def check_reference_args(cfg: CompareConfig) -> None:
    """Refuse a --reference-arg that a model's reference does not take (a config object such as
    Hugging Face's would store it and build the paper model, silently)."""
    for name in cfg.models:
        family = FAMILIES[name]
        if not cfg.reference_kwargs or family.accepts is None or missing_library(family):
            continue
        known = family.accepts()
        for key in cfg.reference_kwargs:
            if key not in known:
                raise ConfigError(f"--reference-arg {key}: {family.reference} takes no such setting"
                                  f"{did_you_mean(key, known)} (model {name})")


def _tv_swin(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
    from torchvision.models.video import swin_transformer
    from torchvision.ops import StochasticDepth

    model = swin_transformer.swin3d_t(weights=None, **over)
    for m in model.modules():  # the builder fixes 0.1; vidbench's model has no drop path by default
        if isinstance(m, StochasticDepth):
            m.p = 0.0
    return model


def _state_only(model: nn.Module) -> Tuple[str, Optional[Dict[str, Any]]]:
    return "torch", None


def _hf_source(model: nn.Module) -> Tuple[str, Optional[Dict[str, Any]]]:
    return "hf-dir", model.config.to_dict()


def _call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _hf_call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=x.transpose(1, 2)).logits  # (B, C, T, H, W) -> HF's (B, T, C, H, W)


def _hf_videos_call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values_videos=x.transpose(1, 2)).logits  # V-JEPA 2's input name


_HIERA_VIDEO = dict(q_stride=(1, 2, 2), mask_unit_size=(1, 8, 8), patch_kernel=(3, 7, 7), patch_stride=(2, 4, 4),
                    patch_padding=(1, 3, 3), sep_pos_embed=True)  # the package's hiera_base_16x224 arguments


def _hiera(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
    """hiera-transformer's Hiera-B video model at this clip, logits out: its `Head` applies a
    softmax in eval mode, replaced by the identity. Its init calls `.item()`, which the meta
    device cannot: there it is built on the CPU and moved."""
    import warnings

    with warnings.catch_warnings():  # it imports timm.models.layers (deprecated in timm 1.x)
        warnings.simplefilter("ignore", FutureWarning)
        import hiera

    kwargs = {"input_size": (frames, img, img), "num_classes": 400, **_HIERA_VIDEO, **over}
    meta = torch.get_default_device().type == "meta"
    with torch.device("cpu") if meta else contextlib.nullcontext():
        model = hiera.Hiera(**kwargs)
    model.head.act_func = nn.Identity()
    return model.to("meta") if meta else model


def _hiera_source(model: nn.Module) -> Tuple[str, Optional[Dict[str, Any]]]:
    return "torch", dict(model.config)  # the constructor's arguments, as its Hub config.json


def _hiera_args() -> Set[str]:
    """The constructor's arguments, as the model records them (`has_config` hides the signature)."""
    with torch.device("meta"):
        return set(_hiera(4, 32, dict(embed_dim=8, stages=(1, 1, 1, 1))).config) - {"input_size"}


def mmaction_backbone(name: str) -> types.ModuleType:
    """mmaction2's backbone module `name` (e.g. "mvit"), imported from the installed mmaction2 files.

    The mmaction2 1.2.0 wheel cannot be imported the usual way: `mmaction/__init__.py` asserts
    mmcv < 2.2.0 (mmcv-lite 2.2.0 is what installs from the registry) and `mmaction.models`
    imports a localizer missing from the wheel. So the `mmaction`, `mmaction.models`,
    `.backbones` and `.common` packages are put in `sys.modules` as bare packages (their
    `__init__` files are not run) and the backbone module is imported from its file; mmengine's
    registry scope is set to "mmaction". ImportError when mmaction2 or mmengine is not installed."""
    importlib.import_module("mmengine")
    if "mmaction" in sys.modules:
        root = sys.modules["mmaction"].__path__[0]
    else:
        spec = importlib.util.find_spec("mmaction")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'mmaction' (pip install mmaction2)")
        root = spec.submodule_search_locations[0]
    for pkg, sub in (("mmaction", ""), ("mmaction.models", "models"), ("mmaction.models.backbones", "models/backbones"),
                     ("mmaction.models.common", "models/common")):
        if pkg not in sys.modules:
            module = types.ModuleType(pkg)
            module.__path__ = [os.path.join(root, sub)]
            sys.modules[pkg] = module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mmcv-lite: "Fail to import MultiScaleDeformableAttention"
        importlib.import_module("mmaction.models.common.transformer")  # registers TimeSformer's attention modules
        from mmengine.registry import DefaultScope

        if DefaultScope.get_current_instance() is None:
            DefaultScope.get_instance("vidbench", scope_name="mmaction")
        return importlib.import_module(f"mmaction.models.backbones.{name}")


def _mmaction_version() -> types.ModuleType:
    mmaction_backbone("mvit")
    return importlib.import_module("mmaction.version")


class _MMActionRecognizer(nn.Module):
    """mmaction2's MViT recognizer as its checkpoints hold it: `backbone` and `cls_head.fc_cls`
    (MViTHead: the last stage's cls token, dropout (inert in eval), fc)."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        width = [m for m in backbone.modules() if isinstance(m, nn.LayerNorm)][-1].normalized_shape[0]
        self.cls_head = nn.Module()
        self.cls_head.fc_cls = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, cls_token = self.backbone(x)[-1]
        return self.cls_head.fc_cls(cls_token)


def _mmaction_mvit(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
    """mmaction2's MViT(arch='base') (MViTv2-B, its configs' mvit-base) at this clip, no drop path,
    with a 400-class MViTHead; `over`: MViT's arguments (arch may be a dict of its arch_zoo keys)."""
    mvit = mmaction_backbone("mvit")
    kwargs = {"arch": "base", "drop_path_rate": 0.0, **over, "spatial_size": img, "temporal_size": frames}
    return _MMActionRecognizer(mvit.MViT(**kwargs), 400)


def _mmaction_mvit_args() -> Set[str]:
    return _init_args(mmaction_backbone("mvit").MViT, "spatial_size", "temporal_size", "pretrained", "init_cfg")


# VideoMAE V2's distilled ViT-B (OpenGVLab/VideoMAEv2 vit_b_k710_dl_from_giant.pth, models/modeling_finetune.py
# vit_base_patch16_224): VideoMAE's ViT-B with mean pooling, LayerNorm eps 1e-6 and a Kinetics-710 head
_VIDEOMAE_V2_BASE = dict(use_mean_pooling=True, layer_norm_eps=1e-6, num_labels=710)


def _hf_videomae_v2(frames: Optional[int], img: int, over: Dict[str, Any]) -> nn.Module:
    return _hf("VideoMAEConfig", "VideoMAEForVideoClassification")(frames, img, {**_VIDEOMAE_V2_BASE, **over})


FAMILIES: Dict[str, Family] = {f.name: f for f in (
    Family("vit_base", "timm", "timm vit_base_patch16_224", "timm-vit", None, 224, _timm_vit, _state_only, _call,
           _timm_vit_args),
    Family("mvit_b_16x4", "torchvision", "torchvision mvit_v1_b", "torchvision-mvit", 16, 224,
           _tv_mvit("mvit_v1_b"), _state_only, _call, _tv_mvit_args),
    Family("mvitv2_s_16x4", "torchvision", "torchvision mvit_v2_s", "torchvision-mvit", 16, 224,
           _tv_mvit("mvit_v2_s"), _state_only, _call, _tv_mvit_args),
    Family("swin3d_t", "torchvision", "torchvision swin3d_t", "torchvision-swin3d", 32, 224, _tv_swin, _state_only,
           _call, _tv_swin_args),
    Family("timesformer_base", "transformers", "transformers TimesformerForVideoClassification", "hf-timesformer", 8,
           224, _hf("TimesformerConfig", "TimesformerForVideoClassification"), _hf_source, _hf_call,
           _hf_args("TimesformerConfig")),
    Family("vivit_m1_base", "transformers", "transformers VivitForVideoClassification", "hf-vivit", 32, 224,
           _hf("VivitConfig", "VivitForVideoClassification"), _hf_source, _hf_call, _hf_args("VivitConfig")),
    Family("videomae_base", "transformers", "transformers VideoMAEForVideoClassification", "hf-videomae", 16, 224,
           _hf("VideoMAEConfig", "VideoMAEForVideoClassification"), _hf_source, _hf_call,
           _hf_args("VideoMAEConfig")),
    Family("videoprism_base", "transformers", "transformers VideoPrismForVideoClassification", "hf-videoprism", 16,
           288, _hf("VideoPrismVisionConfig", "VideoPrismForVideoClassification"), _hf_source, _hf_videoprism_call,
           _hf_args("VideoPrismVisionConfig")),
    Family("vjepa2_vitl_probe", "transformers", "transformers VJEPA2ForVideoClassification (predictor removed)",
           "hf-vjepa2", 16, 256, _hf_vjepa2, _hf_source, _hf_videos_call, _hf_args("VJEPA2Config")),
    Family("hiera_base_16x224", "hiera", "hiera-transformer hiera_base_16x224", "hiera-official", 16, 224, _hiera,
           _hiera_source, _call, _hiera_args),
    Family("mvitv2_b_32x3", "mmaction", "mmaction2 MViT(arch='base') + MViTHead", "mmaction2", 32, 224,
           _mmaction_mvit, _state_only, _call, _mmaction_mvit_args, load=_mmaction_version),
    Family("videomae_base", "transformers", "transformers VideoMAEForVideoClassification (VideoMAE V2 distilled "
           "ViT-B config: eps 1e-6, 710 classes)", "hf-videomae", 16, 224, _hf_videomae_v2, _hf_source, _hf_call,
           _hf_args("VideoMAEConfig"), key="videomae_v2_base"),
)}


@dataclass
class CompareConfig:
    """A `vidbench compare` job: each model against the other library's implementation, one row
    per implementation and mode in compare.csv."""

    models: List[str] = option(default_factory=list, cli=False, help="vidbench models with a reference implementation")
    mode: List[str] = option(default_factory=lambda: list(MODES), choices=MODES,
                             help="infer (forward under inference_mode), train (forward, backward, AdamW step)")
    batch_size: int = BATCH_SIZE()
    frames: Optional[int] = FRAMES(help="clip frames [each family's paper config]", aliases=())
    img_size: Optional[int] = IMG_SIZE(help="input side [each family's paper config]", aliases=())
    precision: str = PRECISION(help="autocast dtype: fp32 (none), bf16, fp16", aliases=())
    device: str = DEVICE("cpu", check=None, help="cpu, cuda, cuda:1, ...")
    threads: Optional[int] = THREADS()
    warmup: int = option(2, help="untimed steps of each implementation before the first round")
    iters: int = option(3, positive=True, help="timed steps of each implementation per round")
    rounds: int = option(3, positive=True, help="interleaved rounds (vidbench, reference, vidbench, ...)")
    isolate_memory: Optional[bool] = option(None, help="peak memory of each implementation and mode in a fresh "
                                                       "process [on CPU yes; on CUDA no: the allocator's peak]")
    memory_iters: int = option(2, positive=True, help="steps run in the fresh process measuring peak memory")
    seed: int = SEED(help="seed of the weight perturbation and the clip", ge=None)
    profile: int = option(0, help="also profile one inference forward of each implementation this many times "
                                  "(torch.profiler, alternately; per op the least self time) into "
                                  "compare_profile.csv [0: no]")
    reference_kwargs: Dict[str, Any] = option(default_factory=dict, flag="reference-arg", metavar="KEY=VALUE",
                                              help="reference config override, repeatable (tests: tiny configs, "
                                                   "e.g. num_hidden_layers=2)")

    def __post_init__(self) -> None:
        if isinstance(self.mode, str) or isinstance(self.models, str):
            raise ConfigError(f"models and mode are lists, got {self.models!r} / {self.mode!r}")
        for m in self.mode:
            if m not in MODES:
                raise ConfigError(f"unknown mode {m!r}; expected one of {', '.join(MODES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        for m in self.models:
            if m not in FAMILIES:
                raise ConfigError(f"no reference implementation for model {m!r}{did_you_mean(m, FAMILIES)} "
                                  f"(compare knows {', '.join(FAMILIES)})")
        for name in ("frames", "img_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")

    @property
    def isolated(self) -> bool:
        return self.device.startswith("cpu") if self.isolate_memory is None else bool(self.isolate_memory)


def _load(family: Family) -> Any:
    return family.load() if family.load is not None else importlib.import_module(family.library)


_PIP = {"mmaction": "mmaction2 mmengine mmcv-lite", "hiera": "hiera-transformer"}  # where the name differs


def missing_library(family: Family) -> Optional[str]:
    """Why the family's reference cannot be built here, or None."""
    try:
        _load(family)
    except ImportError as exc:
        return f"{family.library} is not installed ({exc}); pip install {_PIP.get(family.library, family.library)}"
    return None


def library_version(family: Family) -> Optional[str]:
    try:
        return getattr(_load(family), "__version__", None)
    except ImportError:
        return None


@torch.no_grad()
def perturb_(module: nn.Module, seed: int = 0, scale: float = 0.05) -> nn.Module:
    """Add N(0, scale * max(1, std)) noise to every floating-point parameter and buffer: no tensor
    keeps its initial special value (zero bias, identity LayerNorm), yet the scales stay plausible."""
    gen = torch.Generator().manual_seed(seed)
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point() and not tensor.is_meta:
            std = float(tensor.float().std()) if tensor.numel() > 1 else 0.0
            tensor.add_((torch.randn(tensor.shape, generator=gen) * scale * max(1.0, std)).to(tensor.dtype))
    return module


def _sizes(family: Family, cfg: CompareConfig) -> Tuple[Optional[int], int]:
    frames = None if family.frames is None else (cfg.frames or family.frames)
    return frames, cfg.img_size or family.img_size


def input_shape(family: Family, cfg: CompareConfig) -> Tuple[int, ...]:
    frames, img = _sizes(family, cfg)
    return (cfg.batch_size, 3, img, img) if frames is None else (cfg.batch_size, 3, frames, img, img)


def _vidbench_from(family: Family, reference: nn.Module, frames: Optional[int], img: int,
                   load: bool) -> nn.Module:
    """vidbench's model at the reference's config, through the family's weights format (its
    `infer` reads the config, its `convert` maps the tensors); `load`: with the reference's weights."""
    from ..models import create_model
    from ..weights import Source, check_fit, get_format

    fmt = get_format(family.format)
    kind, config = family.source(reference)
    source = Source(Path(family.reference.replace(" ", ":")), kind, dict(reference.state_dict()), config=config)
    name, model_cfg = fmt.infer(source, family.model, {})
    sizes = {"img_size": img, **({} if frames is None else {"num_frames": frames})}
    model_cfg = {**sizes, **model_cfg}  # a format that reads the size from the weights has the last word
    if not load:
        return create_model(family.model, **model_cfg)
    with torch.device("meta"):
        meta = create_model(family.model, **model_cfg)
    state = fmt.convert(source, meta)
    check_fit(state, meta, family.reference)
    net = create_model(family.model, **model_cfg)
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    return net


def build_pair(family: Family, cfg: CompareConfig) -> Tuple[nn.Module, nn.Module]:
    """(vidbench model, reference model) with the same weights, the reference's perturbed."""
    frames, img = _sizes(family, cfg)
    torch.manual_seed(cfg.seed)
    reference = perturb_(family.build(frames, img, dict(cfg.reference_kwargs)), seed=cfg.seed).eval()
    ours = _vidbench_from(family, reference, frames, img, load=True).eval()
    return ours, reference


def build_one(family: Family, cfg: CompareConfig, impl: str) -> nn.Module:
    """One implementation with initial weights (memory does not depend on the values): for
    vidbench the config comes from the reference built on the meta device."""
    frames, img = _sizes(family, cfg)
    if impl == "reference":
        return family.build(frames, img, dict(cfg.reference_kwargs))
    with torch.device("meta"):
        meta_ref = family.build(frames, img, dict(cfg.reference_kwargs))
    return _vidbench_from(family, meta_ref, frames, img, load=False)


class _Forward(nn.Module):
    """The reference's logits on vidbench's input layout, as a module make_step can drive."""

    def __init__(self, family: Family, model: nn.Module):
        super().__init__()
        self.family, self.model = family, model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.family.forward(self.model, x)


def _step_module(family: Family, impl: str, model: nn.Module) -> nn.Module:
    return model if impl == "vidbench" else _Forward(family, model)


def _clip(family: Family, cfg: CompareConfig, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    return torch.randn(input_shape(family, cfg), generator=gen).to(device)


def _logit_diff(ours: nn.Module, reference: nn.Module, family: Family, x: torch.Tensor) -> float:
    ours.eval()
    reference.eval()
    with torch.no_grad():
        return float((ours(x).float() - family.forward(reference, x).float()).abs().max())


def measure_memory(family: Family, cfg: CompareConfig, impl: str, mode: str) -> Tuple[Optional[float], str]:
    """Peak memory of `memory_iters` steps of one implementation in this (fresh worker) process,
    the model built inside the measurement: peak RSS above the RSS before it existed (weights,
    gradients and optimizer state included), or CUDA's peak."""
    device = torch.device(cfg.device)
    baseline = None
    if device.type == "cpu":
        warm_runtime()
        importlib.import_module("vidbench.weights")  # the modules building the model: loaded before the baseline
        frames, img = _sizes(family, cfg)
        with torch.device("meta"):
            family.build(frames, img, dict(cfg.reference_kwargs))
        gc.collect()
        release_free_heap()
        baseline = current_rss_bytes()
    model = build_one(family, cfg, impl).to(device)
    step = make_step(_step_module(family, impl, model), _clip(family, cfg, device), mode, cfg.precision)
    with PeakMemory(device, baseline_rss=baseline, fresh_process=cfg.isolated) as meter:
        time_steps(step, device, warmup=0, iters=cfg.memory_iters)
    result = meter.result
    method = result.method + (", weights, gradients and AdamW state included" if mode == "train" else
                              ", weights included")
    if device.type == "cpu" and os.environ.get(MMAP_ENV):
        method += f", glibc mmap threshold {os.environ[MMAP_ENV]} B"
    return result.peak_mb, method


def _memory_isolated(family: Family, cfg: CompareConfig, impl: str, mode: str) -> Tuple[Optional[float], str]:
    job = {"config": dataclasses.asdict(cfg), "model": family.name, "impl": impl, "mode": mode,
           "threads": cfg.threads or torch.get_num_threads()}
    # glibc's dynamic mmap threshold keeps freed blocks of up to 32 MiB in the heap, so the peak
    # RSS varied by up to 10% between runs of the same model (fragmentation, not tensors); a
    # fixed 64 KiB threshold returns every large block on free: the peak of live memory,
    # the same to the MiB run after run (timing is not done in this process)
    run = run_worker("vidbench.bench.compare", job, RESULT_PREFIX,
                     env={MMAP_ENV: str(MMAP_THRESHOLD)} if cfg.device == "cpu" else None)
    if run.result is not None:
        if "error" in run.result:
            return None, f"fresh-process measurement failed: {run.result['error']}"
        return run.result["peak_mem_mb"], run.result["mem_method"]
    return None, f"fresh-process measurement crashed (code {run.returncode}): {run.stderr_tail(2)}"[:300]


def _time_interleaved(steps: Dict[str, Callable[[], None]], cfg: CompareConfig, device: torch.device,
                      memory: Optional[Dict[str, Tuple[Optional[float], str]]] = None) -> Dict[str, Timing]:
    """`rounds` rounds, each timing every implementation in turn; with `memory` (a dict to fill),
    the first round of each is measured in this process, where both models and the clip already
    exist: the peak RSS above the RSS then, or CUDA's peak above what was allocated then."""
    times: Dict[str, List[float]] = {impl: [] for impl in steps}
    for r in range(cfg.rounds):
        for impl, step in steps.items():  # vidbench first, then the reference, every round
            if r == 0 and memory is not None:
                resident = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
                with PeakMemory(device) as meter:
                    times[impl] += time_steps(step, device, cfg.warmup, cfg.iters).times_s
                peak = meter.result.peak_mb
                # both models are resident here: count what the steps add above them
                memory[impl] = (None if peak is None else peak - resident,
                                meter.result.method + (" minus resident" if resident else "") + ", weights excluded")
            else:
                times[impl] += time_steps(step, device, cfg.warmup if r == 0 else 1, cfg.iters).times_s
    return {impl: Timing(t) for impl, t in times.items()}


def _label(family: Family, impl: str) -> str:
    """A row's impl: "vidbench" or the reference's library."""
    return "vidbench" if impl == "vidbench" else family.library


def compare_family(family: Family, cfg: CompareConfig, modes: Optional[Sequence[str]] = None,
                   on_row: Optional[Callable[[Dict[str, Any]], None]] = None) -> List[Dict[str, Any]]:
    """The rows of one family: for each mode, vidbench's and the reference's, timed interleaved."""
    modes = list(modes or cfg.mode)
    frames, img = _sizes(family, cfg)
    device = torch.device(cfg.device)
    base = dict(model=family.name, reference=family.reference, library=family.library,
                library_version=library_version(family), frames=frames, img_size=img, batch_size=cfg.batch_size,
                precision=cfg.precision, device=cfg.device, threads=torch.get_num_threads(), rounds=cfg.rounds,
                iters=cfg.iters, warmup=cfg.warmup)
    rows: List[Dict[str, Any]] = []

    def emit(row: Dict[str, Any]) -> None:
        row = {**{c: None for c in COMPARE_COLUMNS}, **base, **row,
               "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        rows.append(row)
        if on_row is not None:
            on_row(row)

    why = missing_library(family)
    if why is not None:
        for mode in modes:
            for impl in ("vidbench", "reference"):
                emit(dict(impl=_label(family, impl), mode=mode, status="skipped", error=why))
        return rows
    for mode in modes:
        try:
            ours, reference = build_pair(family, cfg)
            diff = _logit_diff(ours, reference, family, _clip(family, cfg, torch.device("cpu")))
            ours, reference = ours.to(device), reference.to(device)
            x = _clip(family, cfg, device)
            models = {"vidbench": ours, "reference": reference}
            steps = {impl: make_step(_step_module(family, impl, m), x, mode, cfg.precision)
                     for impl, m in models.items()}
            params = {impl: sum(p.numel() for p in m.parameters()) for impl, m in models.items()}
            memory: Dict[str, Tuple[Optional[float], str]] = {}
            timing = _time_interleaved(steps, cfg, device, None if cfg.isolated else memory)
            del steps, models, ours, reference, x
            gc.collect()
            if cfg.isolated:
                memory = {impl: _memory_isolated(family, cfg, impl, mode) for impl in ("vidbench", "reference")}
        except Exception as exc:  # one family's failure is its rows, not the end of the run
            text = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            for impl in ("vidbench", "reference"):
                emit(dict(impl=_label(family, impl), mode=mode, status="error", error=text))
            continue
        clips = {impl: cfg.batch_size / t.median_s for impl, t in timing.items()}
        for impl in ("vidbench", "reference"):
            emit(dict(impl=_label(family, impl), mode=mode, params=params[impl], max_abs_logit_diff=diff, clips_per_s=clips[impl],
                      step_ms_median=timing[impl].median_s * 1e3, step_ms_iqr=timing[impl].iqr_s * 1e3,
                      speedup_vs_reference=clips[impl] / clips["reference"], peak_mem_mb=memory[impl][0],
                      mem_method=memory[impl][1], status="ok"))
    return rows


def run_compare(cfg: CompareConfig, out: Any, progress: bool = True) -> List[Dict[str, Any]]:
    """Every model of `cfg` against its reference; rows appended to `<out>/compare.csv` as they
    are made. An existing, non-empty compare.csv is an error (runs are never mixed)."""
    if not cfg.models:
        raise ConfigError(f"give at least one model: {', '.join(FAMILIES)}")
    check_reference_args(cfg)  # before the output directory is made
    with run_lock(out, "vidbench compare"):
        store = ResultsStore(out)
        if not store.read(TABLE).empty:
            raise FileExistsError(f"{store.path(TABLE)} already has rows: choose another output directory "
                                  "(a results directory is never added to)")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        store.write_environment(cfg.device, {"compare": dataclasses.asdict(cfg), "argv": sys.argv,
                                             "threads": torch.get_num_threads(),
                                             "libraries": {f.library: library_version(f) for f in FAMILIES.values()}})
        rows: List[Dict[str, Any]] = []
        for name in cfg.models:
            if progress:
                print(f"vidbench compare: {name} vs {FAMILIES[name].reference} ...", file=sys.stderr, flush=True)
            rows += compare_family(FAMILIES[name], cfg, on_row=lambda row: store.append(TABLE, row))
            if cfg.profile:
                for row in profile_family(FAMILIES[name], cfg):
                    store.append(PROFILE_TABLE, row)
        return rows


PROFILE_TABLE = "compare_profile"
# op kinds of a profile: the kernels both implementations must run (matrix products, convolution,
# fused attention), layout copies, and everything else (elementwise, norms, softmax written out)
_KERNEL_OPS = {"aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
               "aten::mkldnn_convolution", "aten::convolution", "aten::_scaled_dot_product_flash_attention_for_cpu",
               "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
               "aten::_scaled_dot_product_cudnn_attention"}
_COPY_OPS = {"aten::copy_", "aten::cat", "aten::contiguous", "aten::clone", "aten::_to_copy", "aten::index",
             "aten::constant_pad_nd", "aten::roll"}


def op_kind(op: str) -> str:
    """'gemm/conv/attention' (work both implementations share), 'copy' or 'other'."""
    return "gemm/conv/attention" if op in _KERNEL_OPS else "copy" if op in _COPY_OPS else "other"


def profile_family(family: Family, cfg: CompareConfig) -> List[Dict[str, Any]]:
    """Where one inference forward's time goes in each implementation: `cfg.profile` forwards of
    each, profiled alternately (torch.profiler, CPU activity) after one unprofiled warm-up; per op,
    the least self time over the repetitions (the least disturbed run on a shared machine). One
    row per (implementation, op) with its self time, share and kind (`op_kind`), plus a row per
    implementation and kind ("total <kind>")."""
    from torch.profiler import ProfilerActivity, profile

    if missing_library(family):
        return []
    device = torch.device(cfg.device)
    ours, reference = (m.to(device).eval() for m in build_pair(family, cfg))
    x = _clip(family, cfg, device)
    runs = {"vidbench": lambda: ours(x), "reference": lambda: family.forward(reference, x)}
    best: Dict[str, Dict[str, float]] = {impl: {} for impl in runs}
    calls: Dict[str, Dict[str, int]] = {impl: {} for impl in runs}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        for run in runs.values():
            run()
        for _ in range(cfg.profile):
            for impl, run in runs.items():
                with profile(activities=activities) as prof:
                    run()
                for event in prof.key_averages():
                    t = event.self_cpu_time_total / 1e3  # ms
                    best[impl][event.key] = min(best[impl].get(event.key, t), t)
                    calls[impl][event.key] = event.count
    rows: List[Dict[str, Any]] = []
    label = {"vidbench": "vidbench", "reference": _label(family, "reference")}
    for impl, ops in best.items():
        total = sum(ops.values()) or 1.0
        kinds: Dict[str, float] = {}
        for op, ms in sorted(ops.items(), key=lambda kv: -kv[1]):
            kinds[op_kind(op)] = kinds.get(op_kind(op), 0.0) + ms
            rows.append(dict(model=family.name, impl=label[impl], op=op, kind=op_kind(op), self_ms=ms,
                             share_pct=100 * ms / total, calls=calls[impl][op], reps=cfg.profile))
        for kind, ms in kinds.items():
            rows.append(dict(model=family.name, impl=label[impl], op=f"total {kind}", kind=kind, self_ms=ms,
                             share_pct=100 * ms / total, calls=None, reps=cfg.profile))
        rows.append(dict(model=family.name, impl=label[impl], op="total", kind="all", self_ms=total, share_pct=100.0,
                         calls=None, reps=cfg.profile))
    return rows


def summary(rows: Sequence[Dict[str, Any]]) -> str:
    """A short text table of a run's rows."""
    head = ("model", "impl", "mode", "max|diff|", "clips/s", "step ms", "iqr ms", "x ref", "peak MiB", "status")
    return text_table(head, [
        (r["model"], r["impl"], r["mode"], cell(r["max_abs_logit_diff"], ".1e"), cell(r["clips_per_s"], ".3f"),
         cell(r["step_ms_median"], ".0f"), cell(r["step_ms_iqr"], ".0f"), cell(r["speedup_vs_reference"], ".2f"),
         cell(r["peak_mem_mb"], ".0f"), status_cell(r))
        for r in rows])


def _worker() -> int:
    """`python -m vidbench.bench.compare`: peak memory of one implementation and mode in this
    fresh process; a JSON job on stdin, one `VIDBENCH_COMPARE {json}` line out."""
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(int(job["threads"]))
    try:
        cfg = CompareConfig(**{**job["config"], "isolate_memory": True})
        peak, method = measure_memory(FAMILIES[job["model"]], cfg, job["impl"], job["mode"])
        out: Dict[str, Any] = {"peak_mem_mb": peak, "mem_method": method}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]}
    report(RESULT_PREFIX, out)
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
