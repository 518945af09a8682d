"""The official V-JEPA 2 checkpoints (facebookresearch/vjepa2 README: ``vitl.pt``, ``vith.pt``,
``vitg.pt``, ``vitg-384.pt``; the attentive probes ``ssv2-vitl-16x2x3.pt``, ``diving48-vitl-256.pt``,
``ssv2-vitg-384-64x2x3.pt``, ``diving48-vitg-384-32x4x3.pt``, ...) into vidbench's `VJEPA2`.

Containers (vidbench.weights.source reads them):

- A pre-training checkpoint (app/vjepa/train.py `save_checkpoint`) holds ``encoder``,
  ``target_encoder`` (the EMA of the encoder), ``predictor``, ``opt``, ``epoch``, ... vidbench
  takes ``target_encoder``: every official evaluation config (configs/eval/*/*.yaml,
  ``checkpoint_key: target_encoder``) loads it, and the released probes were trained on it;
  torch.hub's loader (src/hub/backbones.py) reads ``encoder`` instead. The choice is logged at load and
  is one of the loaded model's ``pretrained_cfg.notes`` (so a result row's ``weights_notes``).
- A probe file (evals/video_classification_frozen/eval.py) holds ``classifiers``: a list of
  `AttentiveClassifier` state dicts (one per probe trained side by side), read as
  ``classifiers.N.*``. It holds no encoder, so it alone is refused (a model with a random encoder
  would be a silent wrong answer): `combine_official(encoder_file, probe_file, out)` writes one
  file with the encoder's ``target_encoder`` and one probe, which loads as the classifier; on the
  command line ``vidbench convert ENCODER.pt DST.safetensors --probe PROBE.pt [--probe-index N]``
  (`combined_official`: the combined file lives in a temporary directory beside DST, named like
  the probe file so that the probe's published entry applies).

Keys: the encoder's carry ``module.backbone.`` (removed, as the official loaders do);
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`` and
``norm`` have vidbench's names; ``pos_embed`` (the files carry one although the rope encoder does
not use it) is not loaded. A probe's (``module.`` removed): ``pooler.query_tokens`` ->
``pool.query_tokens``, ``pooler.cross_attention_block.{norm1, xattn.q, xattn.kv, norm2, mlp.fc1,
mlp.fc2}`` -> ``pool.{norm1, attn.q, attn.kv, norm2, mlp.fc1, mlp.fc2}`` (k then v, as
`CrossAttention` splits them; no output projection), ``pooler.blocks.N.*`` -> ``pool_blocks.N.*``,
``linear`` -> ``head``.

Config: width, depth, tubelet, channels, MLP ratio and qkv bias from the shapes; LayerNorm eps
1e-6 (src/models/vision_transformer.py `vit_*`); heads are no tensor's shape: ``num_heads=``, else
the requested model's at the same width, else the released sizes' (1024 / 1280: 16, 1408: 22).
The probe as the official eval builds it: ``probe_heads`` 16 (every released eval config's
``num_heads``) and torch's default LayerNorm eps 1e-5 (``probe_norm_eps``), MLP ratio from the
shapes; ``probe_depth`` = the pooler's self-attention blocks (the eval's ``num_probe_blocks`` - 1).
The registry model: the published entry the file's name is, where its width and depth fit (the
crop and clip length are in no tensor: ``vitg-384.pt`` is `vjepa2_vitg_384`, a combined file named
``diving48-vitl-256.pt`` takes 32 frames), else by width and depth at 256 px.
"""
from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

import torch

from ...models import create_model
from .._registry import Inferred, WeightsFormat, find_published, register_format
from ..source import Source, WeightsError
from ._util import DROP, converting, count_indexed, pick_model, rename_keys, renamed, unprefixed
from .timm_vit import default_heads

__all__ = ["vjepa2_official_to_vidbench", "combine_official", "combined_official", "OFFICIAL_HEADS"]

log = logging.getLogger("vidbench.weights")

StateDict = Dict[str, Any]
OFFICIAL_HEADS = {1024: 16, 1280: 16, 1408: 22}  # vit_large / vit_huge / vit_giant_xformers
PROBE_HEADS, PROBE_NORM_EPS = 16, 1e-5
_ENCODERS = ("target_encoder", "encoder")
_PROBES = "classifiers"
_CROSS = {"pooler.cross_attention_block.norm1.": "pool.norm1.", "pooler.cross_attention_block.xattn.q.": "pool.attn.q.",
          "pooler.cross_attention_block.xattn.kv.": "pool.attn.kv.", "pooler.cross_attention_block.norm2.": "pool.norm2.",
          "pooler.cross_attention_block.mlp.": "pool.mlp.", "pooler.blocks.": "pool_blocks.", "linear.": "head."}
_BLOCK_PARTS = ("norm1.", "attn.qkv.", "attn.proj.", "norm2.", "mlp.fc1.", "mlp.fc2.")
_ENCODER_KEY = re.compile(r"^(patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)|blocks\.\d+\.(.+))$")
# registry name by (width, depth, crop, with a probe)
_SIZES = {(1024, 24, 256, False): "vjepa2_vitl", (1280, 32, 256, False): "vjepa2_vith",
          (1408, 40, 256, False): "vjepa2_vitg", (1408, 40, 384, False): "vjepa2_vitg_384",
          (1024, 24, 256, True): "vjepa2_vitl_probe", (1408, 40, 384, True): "vjepa2_vitg_384_probe"}


def _encoder_name(key: str) -> Optional[str]:
    name = unprefixed(unprefixed(key, "module."), "backbone.")
    if name == "pos_embed":
        return DROP  # the rope encoder has no position table
    m = _ENCODER_KEY.match(name)
    if m is None or (m.group(4) is not None and not m.group(4).startswith(_BLOCK_PARTS)):
        return None
    return name


def _probe_name(key: str) -> Optional[str]:
    name = unprefixed(key.split(".", 2)[2], "module.")  # classifiers.N.<key>
    if name == "pooler.query_tokens":
        return "pool.query_tokens"
    new = renamed(name, _CROSS)
    if new is None or (new.startswith("pool_blocks.") and not re.match(r"pool_blocks\.\d+\.(norm1|attn\.qkv|attn\.proj"
                                                                        r"|norm2|mlp\.fc1|mlp\.fc2)\.", new)):
        return None
    return new


def _rename(key: str) -> Optional[str]:
    return _probe_name(key) if key.startswith(_PROBES + ".") else _encoder_name(key)


def vjepa2_official_to_vidbench(state: StateDict) -> StateDict:
    """An official V-JEPA 2 encoder state dict (with at most one probe as ``classifiers.0.*``) ->
    vidbench `VJEPA2` names; ValueError on a key it does not know."""
    return rename_keys(state, _rename, "official V-JEPA 2")


def _probe_count(source: Source) -> int:
    return count_indexed(source.state, rf"{_PROBES}\.(\d+)\.")


def sniff(source: Source) -> bool:
    container = (source.container or "").split("+")
    return source.kind == "torch" and bool(container[0]) and all(c in _ENCODERS + (_PROBES,) for c in container)


def _heads(width: int, model: Optional[str], overrides: Dict[str, Any], source: Source) -> int:
    if not overrides.get("num_heads") and model is None and width in OFFICIAL_HEADS:
        return OFFICIAL_HEADS[width]  # ViT-g's 22 is not timm's standard
    return default_heads(width, model, overrides, source)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    if source.container == _PROBES:
        raise source.error("holds only V-JEPA 2 attentive probes (`classifiers`), no encoder; convert it with its "
                           f"encoder: vidbench convert ENCODER.pt DST.safetensors --probe {source.path.name} (in "
                           "Python: vidbench.weights.formats.vjepa2_official.combine_official(ENCODER_FILE, "
                           "PROBE_FILE, OUT_FILE))")
    probes = _probe_count(source)
    if probes > 1:
        raise source.error(f"holds {probes} attentive probes (`classifiers`); vidbench loads one: pick it with "
                           "combine_official(..., probe_index=N)")
    if source.container.startswith("target_encoder"):
        note = ("encoder: `target_encoder` (the EMA encoder the official evaluations load); the file's `encoder`, "
                "where it has one (what torch.hub's loader reads), is not loaded")
    else:
        note = "encoder: `encoder` (the file has no `target_encoder`)"
    if note not in source.notes:  # (inferred once per load; kept once if asked again)
        log.info("%s: %s", source.path, note)
        source.notes.append(note)
    with converting(source):
        state = vjepa2_official_to_vidbench(source.state)
    if "patch_embed.proj.weight" not in state:
        raise source.error("holds no V-JEPA 2 encoder (no patch_embed.proj.weight)")
    kernel = state["patch_embed.proj.weight"].shape
    if len(kernel) != 5 or kernel[3] != kernel[4]:
        raise source.error(f"patch embedding of shape {tuple(kernel)}: vidbench's V-JEPA 2 takes a video tubelet "
                           "embedding with square patches")
    width = int(kernel[0])
    depth = count_indexed(state, r"blocks\.(\d+)\.")
    config: Dict[str, Any] = dict(
        embed_dim=width, depth=depth, in_chans=int(kernel[1]), tubelet_size=tuple(int(k) for k in kernel[2:]),
        num_heads=_heads(width, model, overrides, source), norm_eps=1e-6,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / width, qkv_bias="blocks.0.attn.qkv.bias" in state)
    attentive = "pool.query_tokens" in state
    if attentive:
        config.update(pooling="attentive", probe_depth=count_indexed(state, r"pool_blocks\.(\d+)\."),
                      probe_heads=PROBE_HEADS, probe_norm_eps=PROBE_NORM_EPS,
                      probe_mlp_ratio=state["pool.mlp.fc1.weight"].shape[0] / width,
                      num_queries=int(state["pool.query_tokens"].shape[1]),
                      num_classes=int(state["head.weight"].shape[0]) if "head.weight" in state else 0)
    else:
        config.update(pooling="mean", num_classes=0)
    default = _SIZES.get((width, depth, 256, attentive), "vjepa2_tiny" if width < 512 else "vjepa2_vitl")
    entry = find_published(source.path, source) if model is None else None
    if entry is not None and entry.format == "vjepa2-official":  # the file's name: vitg-384.pt is no shape
        with torch.device("meta"):
            named = create_model(entry.model).config
        if (named.embed_dim, named.depth, named.pooling == "attentive") == (width, depth, attentive):
            default = entry.model
            config.update({k: v for k, v in entry.overrides.items() if k not in config})
    return pick_model(source, model, "vjepa2", default), config


def convert(source: Source, model: Any) -> StateDict:
    with converting(source):
        return vjepa2_official_to_vidbench(source.state)


def _load(path: Union[str, Path]) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt / non-torch file: one line, not the unpickler's traceback
        raise WeightsError(f"{path}: not a torch checkpoint loadable without running code "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc


def combine_official(encoder_file: Union[str, Path], probe_file: Union[str, Path], out_file: Union[str, Path],
                     probe_index: int = 0) -> Path:
    """Write one file vidbench loads as the V-JEPA 2 classifier: the encoder file's
    ``target_encoder`` (else ``encoder``) and the probe file's ``classifiers[probe_index]``."""
    enc, probe = (_load(f) for f in (encoder_file, probe_file))
    key = next((k for k in _ENCODERS if isinstance(enc, dict) and isinstance(enc.get(k), dict)), None)
    if key is None:
        raise WeightsError(f"{encoder_file}: no `target_encoder` or `encoder` state dict (not an official V-JEPA 2 "
                           "pre-training checkpoint)")
    probes = probe.get(_PROBES) if isinstance(probe, dict) else None
    if not isinstance(probes, (list, tuple)) or not 0 <= probe_index < len(probes):
        raise WeightsError(f"{probe_file}: no `classifiers` list with a probe {probe_index} (not an official V-JEPA 2 "
                           "probe file)")
    out = Path(out_file)
    torch.save({key: enc[key], _PROBES: [probes[probe_index]]}, out)
    return out


@contextlib.contextmanager
def combined_official(encoder_file: Union[str, Path], probe_file: Union[str, Path], probe_index: int = 0,
                      workdir: Optional[Union[str, Path]] = None) -> Iterator[Path]:
    """`combine_official` into a temporary directory (in `workdir` where it exists: a ViT-g pair is
    ~4 GB, better beside the output than in /tmp), yielding the combined file, named like the probe
    file (its published entry: metadata, clip length); removed on exit."""
    for path in (encoder_file, probe_file):
        if not Path(path).is_file():
            raise WeightsError(f"{path}: no such file")
    where = Path(workdir) if workdir is not None and Path(workdir).is_dir() else None
    with tempfile.TemporaryDirectory(prefix=".vidbench-vjepa2-", dir=where) as tmp:
        yield combine_official(encoder_file, probe_file, Path(tmp) / Path(probe_file).name, probe_index)


register_format(WeightsFormat(
    "vjepa2-official", "official V-JEPA 2 checkpoint (vitl.pt, vith.pt, vitg.pt, vitg-384.pt: target_encoder loaded, "
    "encoder and predictor not; a probe file, e.g. ssv2-vitl-16x2x3.pt, with its encoder: convert ENCODER DST --probe PROBE)",
    sniff, infer, convert, families=("vjepa2",)))
