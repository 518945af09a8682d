"""One small module per checkpoint format; importing this package registers them all.

Each module defines `sniff`, `infer` and `convert` (see `vidbench.weights.WeightsFormat`) and calls
`register_format`. The published checkpoints of every format are listed in one table,
`vidbench/weights/published.py`. Modules whose name starts with an underscore are helpers, not
formats: what formats share in logic lives there (`_util.py`: key renaming, q / k / v fusing,
the converter's error, counting blocks; `_hf.py`: Hugging Face directories; `_mvit.py`: the MViT
layout of SlowFast, pytorchvideo and mmaction2). A format imports no other format's private
names; one that rewrites its layout into another's (mmaction2 into the official TimeSformer and
Video Swin, Google's .npz into timm's, HF TimeSformer into the official block names) calls that
format's public functions.
"""
import importlib
import pkgutil

# the order formats register in: `detect_format` tries them, and `vidbench list --formats` lists them, in it
FORMAT_MODULES = ("timm_vit", "google_vit", "timesformer_official", "hf_timesformer", "hf_videomae", "hf_vivit",
                  "slowfast_mvit", "torchvision_swin3d", "mmaction2", "pytorchvideo_mvit", "scenic_vivit",
                  "torchvision_mvit", "hf_videoprism", "hf_vjepa2", "vjepa2_official", "hiera_official", "videomaev2_official",
                  "dino_official", "mae_official", "mocov3_official", "dinov2_official", "vidbench_native")
_FOUND = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
if _FOUND != set(FORMAT_MODULES):
    raise ImportError(f"vidbench.weights.formats: FORMAT_MODULES does not list {sorted(_FOUND ^ set(FORMAT_MODULES))}")
for _module in FORMAT_MODULES:
    importlib.import_module(f".{_module}", __name__)
