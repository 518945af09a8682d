"""scenic's ViViT Flax checkpoints (github.com/google-research/scenic, projects/vivit): the
msgpack files `flax.training.checkpoints` writes (`checkpoint_<step>`, or `checkpoint` as the
model zoo publishes them), read without JAX.

The parameter tree is found under `optimizer/target/` (scenic's TrainState with a flax.optim
optimizer, the published checkpoints), `params/` (newer TrainStates) or at the top level (a bare
parameter tree). Two of scenic's model types are read (scenic/projects/vivit/model.py):

- Model 1, `ViViT` with attention_config.type "spacetime" and classifier "token":
  `embedding` (Conv, kernel (t, h, w, in, out)), `cls` (1, 1, D),
  `Transformer/posembed_input/pos_embedding` (1, 1 + T'H'W', D), `Transformer/encoderblock_N`,
  `Transformer/encoder_norm`, `output_projection`;
- Model 2, `SpaceTimeViViT` ("factorized_encoder"): `embedding`, `cls_SpatialTransformer`,
  `cls_TemporalTransformer`, `SpatialTransformer/...` (positions (1, 1 + H'W', D), shared over
  time) and `TemporalTransformer/...` (positions (1, 1 + T', D)), `output_projection`.

Each encoder block (`EncoderBlock`) is LayerNorm_0 -> MultiHeadDotProductAttention_0 (query /
key / value kernels (D, heads, head_dim), biases (heads, head_dim); out kernel (heads, head_dim,
D)) -> LayerNorm_1 -> MlpBlock_0 (Dense_0, Dense_1; kernels (in, out)). The transforms are those
of transformers' convert_vivit_flax_to_pytorch.py, with q, k, v fused into vidbench's `qkv`.
Tokens are time-major in both (the Conv output (T', H', W') flattened in order).

scenic's MlpBlock uses `flax.linen.gelu` = `jax.nn.gelu(x, approximate=True)`, the tanh
approximation, so these checkpoints load with `act_layer="gelu_tanh"`; flax's LayerNorm epsilon
is 1e-6 as vidbench's. Not read: a `pre_logits` layer (representation_size set), gap-classifier
models (no cls token: Model 1 with gap, Model 4) and Model 3's factorised self-attention blocks.

Model 1's position table gives T' x H'W' but not the split: frames and image size come from the
published entry the file name matches, else from `num_frames` / `img_size` given, else 224-pixel
frames (every published ViViT) are assumed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .._registry import Inferred, WeightsFormat, find_published, register_format
from ..source import Source
from ._util import count_indexed, flax_qkv, pick_model, square_side
from .hf_vivit import check_variant

_PREFIXES = ("optimizer/target/", "params/", "")
_ATTN = "MultiHeadDotProductAttention_0"


def tree_prefix(source: Source) -> Optional[str]:
    """Where the parameter tree starts in the flattened checkpoint (None: not a scenic ViViT)."""
    if source.kind != "msgpack":
        return None
    for prefix in _PREFIXES:
        kernel = source.state.get(f"{prefix}embedding/kernel")
        if kernel is not None and kernel.ndim == 5 and (  # a tubelet Conv3d (an image ViT's is 4-d)
                f"{prefix}Transformer/encoderblock_0/{_ATTN}/query/kernel" in source.state
                or f"{prefix}SpatialTransformer/encoderblock_0/{_ATTN}/query/kernel" in source.state):
            return prefix
    return None


def sniff(source: Source) -> bool:
    return tree_prefix(source) is not None


def _params(source: Source) -> Dict[str, np.ndarray]:
    prefix = tree_prefix(source)
    if prefix is None:
        raise source.error("not a scenic ViViT checkpoint (no embedding/kernel and Transformer or "
                           "SpatialTransformer/encoderblock_0 under optimizer/target, params or the top level)")
    return {k[len(prefix):]: v for k, v in source.state.items() if k.startswith(prefix)}


# ---- the transforms (Flax layout -> torch layout), one place for convert and the tests


def conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """Flax Conv kernel (t, h, w, in, out) -> torch Conv3d weight (out, in, t, h, w)."""
    return np.ascontiguousarray(np.transpose(kernel, (4, 3, 0, 1, 2)))


def dense_kernel(kernel: np.ndarray) -> np.ndarray:
    """Flax Dense kernel (in, out) -> torch Linear weight (out, in)."""
    return np.ascontiguousarray(kernel.T)


def out_kernel(kernel: np.ndarray) -> np.ndarray:
    """Attention output kernel (heads, head_dim, D) -> torch Linear weight (D, heads * head_dim)."""
    return np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T)


def _block(p: Dict[str, np.ndarray], src: str, dst: str) -> Dict[str, np.ndarray]:
    a = f"{src}/{_ATTN}"
    get = p.__getitem__
    out = {
        f"{dst}.norm1.weight": get(f"{src}/LayerNorm_0/scale"),
        f"{dst}.norm1.bias": get(f"{src}/LayerNorm_0/bias"),
        f"{dst}.attn.qkv.weight": flax_qkv(get(f"{a}/query/kernel"), get(f"{a}/key/kernel"), get(f"{a}/value/kernel")),
        f"{dst}.attn.proj.weight": out_kernel(get(f"{a}/out/kernel")),
        f"{dst}.attn.proj.bias": get(f"{a}/out/bias"),
        f"{dst}.norm2.weight": get(f"{src}/LayerNorm_1/scale"),
        f"{dst}.norm2.bias": get(f"{src}/LayerNorm_1/bias"),
        f"{dst}.mlp.fc1.weight": dense_kernel(get(f"{src}/MlpBlock_0/Dense_0/kernel")),
        f"{dst}.mlp.fc1.bias": get(f"{src}/MlpBlock_0/Dense_0/bias"),
        f"{dst}.mlp.fc2.weight": dense_kernel(get(f"{src}/MlpBlock_0/Dense_1/kernel")),
        f"{dst}.mlp.fc2.bias": get(f"{src}/MlpBlock_0/Dense_1/bias"),
    }
    if f"{a}/query/bias" in p:
        out[f"{dst}.attn.qkv.bias"] = flax_qkv(get(f"{a}/query/bias"), get(f"{a}/key/bias"), get(f"{a}/value/bias"))
    return out


def _encoder(p: Dict[str, np.ndarray], src: str, blocks: str, norm: str) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    for i in range(count_indexed(p, rf"^{src}/encoderblock_(\d+)/")):
        out.update(_block(p, f"{src}/encoderblock_{i}", f"{blocks}.{i}"))
    out[f"{norm}.weight"] = p[f"{src}/encoder_norm/scale"]
    out[f"{norm}.bias"] = p[f"{src}/encoder_norm/bias"]
    return out


def _model_type(p: Dict[str, np.ndarray]) -> str:
    return "factorised_encoder" if "SpatialTransformer/encoderblock_0/" + _ATTN + "/query/kernel" in p else "joint"


def scenic_vivit_to_vidbench(p: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """scenic ViViT parameter tree (flat, '/'-joined, below optimizer/target) -> vidbench state dict
    (`ViViT` for Model 1, `ViViTFactorisedEncoder` for Model 2)."""
    out = {"patch_embed.proj.weight": conv_kernel(p["embedding/kernel"]), "patch_embed.proj.bias": p["embedding/bias"]}
    if _model_type(p) == "joint":
        out["cls_token"] = p["cls"]
        out["pos_embed"] = p["Transformer/posembed_input/pos_embedding"]
        out.update(_encoder(p, "Transformer", "blocks", "norm"))
    else:
        out["cls_token"] = p["cls_SpatialTransformer"]
        out["pos_embed"] = p["SpatialTransformer/posembed_input/pos_embedding"]
        out["temporal_cls_token"] = p["cls_TemporalTransformer"]
        out["temporal_pos_embed"] = p["TemporalTransformer/posembed_input/pos_embedding"]
        out.update(_encoder(p, "SpatialTransformer", "blocks", "norm"))
        out.update(_encoder(p, "TemporalTransformer", "temporal_blocks", "temporal_norm"))
    if "output_projection/kernel" in p:
        out["head.weight"] = dense_kernel(p["output_projection/kernel"])
        out["head.bias"] = p["output_projection/bias"]
    return out


def _unsupported(source: Source, p: Dict[str, np.ndarray]) -> None:
    if any(k.startswith("pre_logits/") for k in p):
        raise source.error("has a pre_logits layer (scenic representation_size set): vidbench's ViViT has none")
    if any("/MultiHeadDotProductAttention_space/" in k for k in p):
        raise source.error("is a scenic ViViT Model 3 (factorised self-attention) checkpoint: not supported "
                           "(Models 1 and 2 are)")
    if _model_type(p) == "joint" and "cls" not in p:
        raise source.error("is a scenic ViViT without a cls token (classifier 'gap': Model 1 with gap or "
                           "Model 4): not supported (token-classifier Models 1 and 2 are)")
    if _model_type(p) == "factorised_encoder" and not {"cls_SpatialTransformer", "cls_TemporalTransformer"} <= set(p):
        raise source.error("is a scenic ViViT factorised encoder without cls tokens (classifier 'gap'): "
                           "not supported (vidbench's Model 2 uses cls tokens)")


def _heads_mlp(source: Source, p: Dict[str, np.ndarray], encoder: str) -> Tuple[int, int, int]:
    q = p[f"{encoder}/encoderblock_0/{_ATTN}/query/kernel"]
    return int(q.shape[0]), int(q.shape[1]), int(p[f"{encoder}/encoderblock_0/MlpBlock_0/Dense_0/kernel"].shape[1])


def _frames_and_size(source: Source, tokens: int, tubelet: Tuple[int, int, int], overrides: Dict[str, Any]
                     ) -> Tuple[int, int]:
    """Model 1: (frames, square image side) whose tubelet grid has `tokens` tokens."""
    kt, kh, kw = tubelet
    if kh != kw:
        raise source.error(f"non-square tubelet {tubelet}: not supported")
    published = find_published(Path(source.path), source)
    tries = []
    if published is not None:
        tries.append((published.num_frames, published.crop_size))
    frames_given, size_given = overrides.get("num_frames"), overrides.get("img_size")
    if frames_given and size_given:
        tries.append((frames_given, size_given))
    if size_given:
        tries.append((None, size_given))  # the checkpoint's size, other frames to resize to
    if frames_given:
        tries.append((frames_given, None))
    tries.append((None, 224))
    for frames, side in tries:
        if isinstance(side, (tuple, list)):
            side = side[0] if side[0] == side[1] else None
        if frames is None and side is not None and side % kh == 0 and tokens % ((side // kh) ** 2) == 0:
            frames = tokens // (side // kh) ** 2 * kt
        elif side is None and frames is not None and frames % kt == 0 and tokens % (frames // kt) == 0:
            grid = int(round((tokens // (frames // kt)) ** 0.5))
            side = grid * kh
        if frames and side and frames % kt == 0 and (frames // kt) * (side // kh) ** 2 == tokens:
            return int(frames), int(side)
    raise source.error(f"{tokens} position embeddings with tubelet {tubelet}: cannot tell frames from image size; "
                       "give num_frames (and img_size) of the checkpoint")


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    p = _params(source)
    _unsupported(source, p)
    kernel = p["embedding/kernel"]
    if kernel.ndim != 5:
        raise source.error(f"embedding/kernel {kernel.shape} is not a 3-D (tubelet) Conv kernel (t, h, w, in, out)")
    kt, kh, kw, in_chans, dim = (int(v) for v in kernel.shape)
    attention_type = _model_type(p)
    config: Dict[str, Any] = {
        "attention_type": attention_type,
        "classifier": "token",
        "tubelet_size": (kt, kh, kw),
        "in_chans": in_chans,
        "embed_dim": dim,
        "qkv_bias": any(k.endswith(f"{_ATTN}/query/bias") for k in p),
        "num_classes": int(p["output_projection/kernel"].shape[1]) if "output_projection/kernel" in p else 0,
        "act_layer": "gelu_tanh",  # flax nn.gelu = jax.nn.gelu(approximate=True)
        "norm_eps": 1e-6,
    }
    if attention_type == "joint":
        width, heads, mlp = _heads_mlp(source, p, "Transformer")
        tokens = p["Transformer/posembed_input/pos_embedding"].shape[1] - 1
        frames, side = _frames_and_size(source, tokens, (kt, kh, kw), overrides)
        config.update(depth=count_indexed(p, r"^Transformer/encoderblock_(\d+)/"), num_frames=frames, img_size=side)
        defaults = {(768, 12): "vivit_m1_base", (192, 4): "vivit_m1_tiny"}
        default = defaults.get((dim, config["depth"]), "vivit_m1_base")
    else:
        width, heads, mlp = _heads_mlp(source, p, "SpatialTransformer")
        t_width, t_heads, t_mlp = _heads_mlp(source, p, "TemporalTransformer")
        if (t_heads, t_mlp) != (heads, mlp):
            raise source.error(f"spatial ({heads} heads, mlp {mlp}) and temporal ({t_heads} heads, mlp {t_mlp}) "
                               "encoders differ: vidbench's factorised encoder shares num_heads and mlp_ratio")
        side = square_side(p["SpatialTransformer/posembed_input/pos_embedding"].shape[1] - 1, source,
                           "SpatialTransformer/posembed_input/pos_embedding") * kh
        frames = (p["TemporalTransformer/posembed_input/pos_embedding"].shape[1] - 1) * kt
        config.update(depth=count_indexed(p, r"^SpatialTransformer/encoderblock_(\d+)/"),
                      temporal_depth=count_indexed(p, r"^TemporalTransformer/encoderblock_(\d+)/"),
                      num_frames=frames, img_size=side)
        defaults = {(1024, 24): "vivit_m2_large", (768, 12): "vivit_m2_base", (192, 4): "vivit_m2_tiny"}
        default = defaults.get((dim, config["depth"]), "vivit_m2_base")
    if dim % heads or width != dim or int(dim * (mlp / dim)) != mlp:
        raise source.error(f"attention / MLP shapes (width {width}, {heads} heads, mlp {mlp}) do not fit embed dim {dim}")
    config.update(num_heads=heads, mlp_ratio=mlp / dim)
    name = pick_model(source, model, "vivit", default)
    check_variant(source, name, attention_type)
    return name, config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    p = _params(source)
    _unsupported(source, p)
    try:
        return scenic_vivit_to_vidbench(p)
    except KeyError as err:
        raise source.error(f"scenic ViViT tree lacks {err.args[0]}") from None


def preprocess(source: Source) -> Dict[str, Any]:
    """What every scenic ViViT config uses (configs/kinetics400, kinetics600, ...): frames
    zero-centred to [-1, 1] (`zero_centering = True`: mean 0.5, std 0.5 on [0, 1] pixels), short
    side resized to 256 (`min_resize`), 224 crop."""
    return {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_size": 224, "resize_size": 256}


register_format(WeightsFormat(
    "scenic-vivit", "scenic ViViT Flax checkpoint (msgpack; Model 1 unfactorised, Model 2 factorised encoder)",
    sniff, infer, convert, families=("vivit",), preprocess=preprocess))
