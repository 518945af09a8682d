"""VTN: Video Transformer Network (Neimark et al., ICCVW 2021).

A ViT-B/16 backbone embeds every frame (its cls output after the final norm); a Longformer
temporal encoder runs over the frame embeddings with a global cls token; an MLP head classifies
the cls output. As in the reference code (bomri/SlowFast, projects/vtn):

- temporal embeddings as in Longformer/RoBERTa: frame embedding + learned position embedding
  (the frame's position; the cls token takes position `max_position_embeddings - 2`) + token
  type embedding (1 for cls), then LayerNorm and dropout;
- 3 post-norm Longformer layers, 12 heads, intermediate size 3072, attention window 18 (each
  frame sees 9 neighbours on each side) with the cls token global; global attention has its own
  qkv projection; LayerNorm eps 1e-12 (LongformerConfig's default);
- head: LayerNorm -> Linear(768, 768) -> GELU -> Dropout -> Linear(768, classes).

The sliding window is computed banded, as Longformer does it, not as dense attention under an
(N, N) mask: the frames are cut in chunks of window // 2 and each chunk attends to the global
tokens and to its own and its two neighbouring chunks, one call of the shared kernel for all
chunks with a small band mask. Multiply-adds and time grow as N * window rather than N**2
(benchmarks/vtn_window.py measures the crossover over 16..1024 frames; at VTN-B's 16 frames the
band is no smaller than the sequence); the result equals the dense-masked computation
(`LongformerSelfAttention(banded=False)`, tests/test_vtn.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..layers import Attention, check_video, init_weights, scaled_dot_product, to_2tuple
from ._base import Classifier, EncoderConfig, check_compatible, load_backbone
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model
from .vit import VisionTransformer, ViTConfig

_LONGFORMER_EPS = 1e-12


@dataclass
class VTNConfig(EncoderConfig):
    """VTN: a ViT backbone per frame (`EncoderConfig`: its width is also the temporal encoder's hidden
    size, `depth` / `num_heads` the backbone's; its dropout the head's too), a Longformer temporal
    encoder and an MLP head."""
    num_frames: int = 16
    patch_size: int = 16
    temporal_depth: int = 3
    temporal_heads: int = 12
    temporal_mlp_dim: int = 3072
    attention_window: int = 18
    max_position_embeddings: int = 288
    head_dim: int = 768  # width of the MLP head's hidden layer
    temporal_drop_rate: float = 0.1  # Longformer hidden_dropout_prob
    temporal_attn_drop_rate: float = 0.1  # Longformer attention_probs_dropout_prob

    def __post_init__(self) -> None:
        check_config(self)
        if self.num_frames > self.max_position_embeddings - 2:
            raise ValueError(
                f"num_frames {self.num_frames} exceeds the {self.max_position_embeddings - 2} frame positions "
                f"of max_position_embeddings={self.max_position_embeddings}"
            )


def window_mask(n: int, window: int, num_global: int = 0, device: Optional[torch.device] = None) -> torch.Tensor:
    """(N, N) boolean mask, True where query i may attend key j: |i - j| <= window // 2, or
    either token is one of the `num_global` leading global tokens (Longformer)."""
    idx = torch.arange(n, device=device)
    mask = (idx[:, None] - idx[None, :]).abs() <= window // 2
    if num_global:
        mask[:num_global, :] = True
        mask[:, :num_global] = True
    return mask


def band_mask(n: int, window: int, num_global: int, chunk: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """(num_chunks, chunk, num_global + chunk + 2 * (window // 2)) boolean mask of
    `banded_window_attention`: chunk i holds queries num_global + i * chunk + j, its keys are the
    global tokens then positions num_global + i * chunk - window // 2 + m. A query may attend every
    global key and the band keys within window // 2 of it that are real non-global tokens; a
    padding query (past the end) attends its band, so that no row is empty."""
    h, g = window // 2, num_global
    chunks = -(-(n - g) // chunk)
    i = torch.arange(chunks, device=device)[:, None, None]
    j = torch.arange(chunk, device=device)[None, :, None]
    m = torch.arange(chunk + 2 * h, device=device)[None, None, :]
    key = g + i * chunk - h + m  # (chunks, 1, chunk + 2h) positions of the band keys
    in_window = (m - j >= 0) & (m - j <= 2 * h)  # |query - key| <= h
    local = in_window & (((key >= g) & (key < n)) | (g + i * chunk + j >= n))
    return torch.cat([local.new_ones(chunks, chunk, g), local], dim=-1)


def banded_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, num_global: int = 0,
                            dropout_p: float = 0.0, chunk: Optional[int] = None,
                            backend: Optional[str] = None) -> torch.Tensor:
    """Longformer sliding-window attention of the non-global queries, banded: queries in chunks
    of `chunk` (default window // 2) against the global keys and their key band (chunk +
    2 * (window // 2) keys), all chunks in one call of the shared kernel.

    Args:
        q, k, v: (B, heads, N, head_dim), the first `num_global` tokens global.
        dropout_p, backend: the kernel's (`scaled_dot_product`).
    Returns:
        (B, heads, N - num_global, head_dim): rows num_global.. of the dense-masked attention
        (`dense_window_attention`), computed in O(N * window).
    """
    n, g, h = q.shape[-2], num_global, window // 2
    if n == g:  # global tokens only
        return q[:, :, g:]
    chunk = chunk or max(h, 1)
    chunks = -(-(n - g) // chunk)
    pad = chunks * chunk - (n - g)
    q_local = rearrange(F.pad(q[:, :, g:], (0, 0, 0, pad)), "b h (k c) d -> b h k c d", c=chunk)  # (B, heads, chunks, c, d)

    def bands(z: torch.Tensor) -> torch.Tensor:  # (B, heads, N, d) -> (B, heads, chunks, G + chunk + 2h, d)
        band = F.pad(z, (0, 0, h, pad + h))[:, :, g:].unfold(2, chunk + 2 * h, chunk).transpose(-1, -2)
        return torch.cat([z[:, :, None, :g].expand(-1, -1, chunks, -1, -1), band], dim=3)

    mask = band_mask(n, window, g, chunk, q.device)  # (chunks, chunk, G + chunk + 2h)
    out = scaled_dot_product(q_local, bands(k), bands(v), bias=mask, dropout_p=dropout_p, backend=backend)  # (B, heads, chunks, c, d)
    return rearrange(out, "b h k c d -> b h (k c) d")[:, :, : n - g]


def dense_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, num_global: int = 0,
                           dropout_p: float = 0.0, backend: Optional[str] = None) -> torch.Tensor:
    """The reference for `banded_window_attention`: the non-global queries against all N keys
    under the (N, N) `window_mask`, O(N**2). Same arguments and result."""
    mask = window_mask(q.shape[-2], window, num_global, q.device)[num_global:]  # (N - G, N)
    return scaled_dot_product(q[:, :, num_global:], k, v, bias=mask, dropout_p=dropout_p, backend=backend)


class LongformerSelfAttention(Attention):
    """Longformer self-attention: the sliding window (`window`, window // 2 neighbours each side)
    for the local tokens, banded; the `num_global_tokens` leading tokens attend to and are seen
    by every token, their own rows through a separate projection (`qkv_global`).

    Args:
        banded: False computes the window as dense attention under an (N, N) mask: the
            reference that tests and benchmarks/vtn_window.py compare with.
    """

    def __init__(self, dim: int, num_heads: int, window: int, num_global_tokens: int = 1, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, banded: bool = True) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        if window < 2:
            raise ValueError(f"the attention window must be >= 2, got {window}")
        self.window, self.num_global_tokens, self.banded = window, num_global_tokens, banded
        self.qkv_global = nn.Linear(dim, dim * 3, bias=qkv_bias) if num_global_tokens else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x: (B, N, dim), global tokens first -> (B, N, dim)."""
        g = self.num_global_tokens
        attend = banded_window_attention if self.banded else dense_window_attention
        out = attend(*self._qkv(x), self.window, g, self.dropout_p, backend=self.attn_backend)  # (B, heads, N - G, head_dim)
        if g:
            qg, kg, vg = self._qkv(x, self.qkv_global)
            out_g = scaled_dot_product(qg[:, :, :g], kg, vg, dropout_p=self.dropout_p, backend=self.attn_backend)  # (B, heads, G, head_dim)
            out = torch.cat([out_g, out], dim=2)
        return self._project(out)  # (B, N, dim)

    def extra_repr(self) -> str:
        return f"window={self.window}, num_global_tokens={self.num_global_tokens}, banded={self.banded}"


class LongformerLayer(nn.Module):
    """Post-norm Longformer layer: LN(x + drop(attn(x))), then LN(h + drop(fc2(gelu(fc1(h)))))."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, window: int, drop: float, attn_drop: float):
        super().__init__()
        self.attn = LongformerSelfAttention(dim, num_heads, window, num_global_tokens=1, attn_drop=attn_drop,
                                            proj_drop=drop)
        self.norm1 = nn.LayerNorm(dim, eps=_LONGFORMER_EPS)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.drop = nn.Dropout(drop)
        self.norm2 = nn.LayerNorm(dim, eps=_LONGFORMER_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.drop(self.fc2(self.act(self.fc1(x)))))


class VTN(Classifier):
    def __init__(self, config: VTNConfig):
        super().__init__()
        self.config = cfg = config
        backbone_cfg = ViTConfig(
            img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans, num_classes=0,
            embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias, drop_rate=cfg.drop_rate, attn_drop_rate=cfg.attn_drop_rate,
            drop_path_rate=cfg.drop_path_rate,
        )
        self.backbone = VisionTransformer(backbone_cfg)
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.embed_norm = nn.LayerNorm(dim, eps=_LONGFORMER_EPS)
        self.embed_drop = nn.Dropout(cfg.temporal_drop_rate)
        self.temporal_layers = nn.ModuleList(
            LongformerLayer(dim, cfg.temporal_heads, cfg.temporal_mlp_dim, cfg.attention_window,
                            cfg.temporal_drop_rate, cfg.temporal_attn_drop_rate)
            for _ in range(cfg.temporal_depth)
        )
        self.head_norm = nn.LayerNorm(dim)
        self.head_fc = nn.Linear(dim, cfg.head_dim)
        self.head_act = nn.GELU()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = cfg.head_dim
        self.head = self._make_head(cfg.num_classes)
        for module in (self.temporal_layers, self.head_fc):
            module.apply(init_weights)
        for emb in (self.position_embeddings, self.token_type_embeddings):
            nn.init.normal_(emb.weight, std=0.02)  # BERT initializer_range

    def forward_features(self, x: torch.Tensor, position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, T, H, W); position_ids: (B, T) positions of the sampled frames in the video
        (default 0..T-1). Returns the temporal encoder's tokens (B, 1 + T, C)."""
        cfg = self.config
        check_video(x, cfg.in_chans, cfg.num_frames, to_2tuple(cfg.img_size))
        b, t = x.shape[0], x.shape[2]
        frames = self.backbone.forward_head(self.backbone.forward_features(rearrange(x, "b c t h w -> (b t) c h w")),
                                            pre_logits=True)
        x = torch.cat([self.cls_token.expand(b, -1, -1), rearrange(frames, "(b t) c -> b t c", t=t)], dim=1)
        if position_ids is None:
            position_ids = torch.arange(t, device=x.device).expand(b, t)
        max_pos = cfg.max_position_embeddings
        position_ids = torch.cat([position_ids.new_full((b, 1), max_pos - 2), position_ids % (max_pos - 2)], dim=1)
        token_types = torch.zeros_like(position_ids)
        token_types[:, 0] = 1
        x = x + self.position_embeddings(position_ids) + self.token_type_embeddings(token_types)
        x = self.embed_drop(self.embed_norm(x))  # (B, 1 + T, C)
        for layer in self.temporal_layers:
            x = self.run_block(layer, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.head_act(self.head_fc(self.head_norm(x[:, 0]))))
        return x if pre_logits else self.head(x)

    @torch.no_grad()
    def from_image_backbone(self, vit: VisionTransformer) -> VTN:
        """The backbone takes the image ViT's weights (VTN starts from an ImageNet ViT); the
        temporal encoder and head stay random. The backbone embeds single frames, so there is no
        tubelet rule to choose and no `init=` argument (`image_init_rules` is empty)."""
        pairs = [(f, f) for f in ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias")]
        check_compatible(self.config, vit.config, pairs, "VTN")
        load_backbone(self.backbone, vit)
        return self


def _vtn(name: str, defaults: dict, overrides: dict) -> VTN:
    return VTN(build_config(VTNConfig, name, defaults, overrides))


@register_model("vtn", ModelMeta(input_size=(3, 16, 224, 224), source="VTN (ICCVW 2021), ViT-B-VTN, reference config"))
def vtn_base(**kw: Any) -> VTN:
    return _vtn("vtn_base", dict(), kw)


@register_model("vtn", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def vtn_tiny(**kw: Any) -> VTN:
    tiny = dict(img_size=32, num_frames=8, patch_size=8, embed_dim=192, depth=4, num_heads=3, num_classes=10,
                temporal_depth=2, temporal_heads=3, temporal_mlp_dim=768, attention_window=4,
                max_position_embeddings=64, head_dim=192)
    return _vtn("vtn_tiny", tiny, kw)

