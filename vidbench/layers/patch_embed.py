"""Patch and tubelet embeddings, and their initialisation from a 2-D image patch embedding."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from einops import rearrange
from torch import nn

__all__ = ["TUBELET_INITS", "PatchEmbed", "TubeletEmbed", "inflate_patch_weight", "to_2tuple", "to_3tuple", "check_video"]

IntOr2 = Union[int, Sequence[int]]
IntOr3 = Union[int, Sequence[int]]
TUBELET_INITS = ("central_frame", "inflation", "random")


def _sizes(v: Sequence[int], n: int, what: str) -> Tuple[int, ...]:
    """`v` as n ints: another number of axes is an error, never read as something else."""
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) != n:
        raise ValueError(f"expected an integer or {what}, got {v!r}")
    if any(isinstance(x, bool) or int(x) != x for x in v):
        raise ValueError(f"expected integer sizes {what}, got {v!r}")
    return tuple(int(x) for x in v)


def to_2tuple(v: IntOr2) -> Tuple[int, int]:
    """An int (a square) or two sizes (h, w)."""
    return (int(v), int(v)) if isinstance(v, int) else _sizes(v, 2, "(h, w)")  # type: ignore[return-value]


def to_3tuple(v: IntOr3) -> Tuple[int, int, int]:
    """An int p (a per-frame p x p patch: (1, p, p)) or three sizes (t, h, w)."""
    if isinstance(v, int):
        return (1, int(v), int(v))  # an int patch size is a per-frame (t = 1) patch
    return _sizes(v, 3, "(t, h, w)")  # type: ignore[return-value]


def _check_divisible(what: str, size: int, patch: int) -> None:
    if size % patch != 0:
        raise ValueError(f"{what} {size} is not divisible by the patch/tubelet size {patch}")


def check_video(x: torch.Tensor, in_chans: int, num_frames: int, img_size: Tuple[int, int]) -> None:
    """Clear errors for inputs a video model cannot take: rank, channels, frames, size."""
    if x.ndim != 5:
        raise ValueError(
            f"expected a video batch of shape (B, C, T, H, W), got a {x.ndim}-d tensor of shape "
            f"{tuple(x.shape)}"
        )
    _, c, t, h, w = x.shape
    if c != in_chans:
        raise ValueError(f"expected {in_chans} input channels, got {c} (input shape {tuple(x.shape)})")
    if t != num_frames or (h, w) != tuple(img_size):
        raise ValueError(
            f"model was built for {num_frames} frames of {img_size[0]}x{img_size[1]}, got {t} frames of "
            f"{h}x{w}; create the model with num_frames={t}, img_size={h} to change it"
        )


class PatchEmbed(nn.Module):
    """Image (B, C, H, W) -> patch tokens (B, N, D) with a Conv2d of kernel = stride = patch."""

    def __init__(self, img_size: IntOr2 = 224, patch_size: IntOr2 = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.img_size, self.patch_size = to_2tuple(img_size), to_2tuple(patch_size)
        for name, size, p in zip(("image height", "image width"), self.img_size, self.patch_size):
            _check_divisible(name, size, p)
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected an image batch of shape (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"model was built for {self.img_size[0]}x{self.img_size[1]} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}; create it with img_size={x.shape[-2]} to change it"
            )
        return rearrange(self.proj(x), "b d h w -> b (h w) d")  # (B, N, D)


class TubeletEmbed(nn.Module):
    """Video (B, C, T, H, W) -> tubelet tokens (B, T'*H'*W', D), time-major, with a Conv3d of
    kernel = stride = (t, h, w). A per-frame 2-D patch embedding is the t = 1 case.

    Args:
        kernel_size, padding: an overlapping cube stem instead (MViT: kernel 3x7x7, stride
            2x4x4, padding 1x3x3); the stride is still `tubelet_size` and must divide the clip.
    """

    def __init__(
        self,
        img_size: IntOr2 = 224,
        num_frames: int = 8,
        tubelet_size: IntOr3 = (2, 16, 16),
        in_chans: int = 3,
        embed_dim: int = 768,
        kernel_size: Optional[IntOr3] = None,
        padding: IntOr3 = 0,
    ):
        super().__init__()
        self.img_size, self.tubelet_size = to_2tuple(img_size), to_3tuple(tubelet_size)
        self.kernel_size = self.tubelet_size if kernel_size is None else to_3tuple(kernel_size)
        self.padding = (padding,) * 3 if isinstance(padding, int) else to_3tuple(padding)
        self.num_frames, self.in_chans = int(num_frames), in_chans
        _check_divisible("frame count", self.num_frames, self.tubelet_size[0])
        _check_divisible("image height", self.img_size[0], self.tubelet_size[1])
        _check_divisible("image width", self.img_size[1], self.tubelet_size[2])
        sizes = (self.num_frames, *self.img_size)
        self.grid_size = tuple(
            (n + 2 * p - k) // s + 1 for n, k, s, p in zip(sizes, self.kernel_size, self.tubelet_size, self.padding)
        )
        if min(self.grid_size) < 1:
            raise ValueError(f"a {sizes} clip is smaller than the stem kernel {self.kernel_size}")
        self.tokens_per_frame = self.grid_size[1] * self.grid_size[2]
        self.num_patches = self.grid_size[0] * self.tokens_per_frame
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=self.kernel_size, stride=self.tubelet_size,
                              padding=self.padding)

    @property
    def grid(self) -> Tuple[int, int]:
        """(temporal tokens, tokens per frame), the grid factorised attention reshapes by."""
        return self.grid_size[0], self.tokens_per_frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_video(x, self.in_chans, self.num_frames, self.img_size)
        return rearrange(self.proj(x), "b d t h w -> b (t h w) d")  # (B, T'*H'*W', D)

    @torch.no_grad()
    def init_from_2d(self, weight: torch.Tensor, bias: torch.Tensor, method: str = "central_frame") -> None:
        """Initialise from a 2-D patch embedding (D, C, h, w) by the ViViT rules, over the
        kernel's t frames."""
        if method == "random":
            return
        if tuple(weight.shape[-2:]) != self.kernel_size[1:]:
            raise ValueError(f"2-D filter of size {tuple(weight.shape[-2:])} does not fit the {self.kernel_size} kernel")
        self.proj.weight.copy_(inflate_patch_weight(weight, self.kernel_size[0], method))
        self.proj.bias.copy_(bias)


def inflate_patch_weight(weight: torch.Tensor, frames: int, method: str) -> torch.Tensor:
    """(D, C, h, w) image filter -> (D, C, t, h, w) tubelet filter.

    central_frame: the 2-D filter at temporal index t // 2, zeros elsewhere (ViViT, scenic);
    inflation: replicated over t and divided by t (I3D filter inflation).
    """
    if method not in TUBELET_INITS:
        raise ValueError(f"unknown tubelet init {method!r}; expected one of {TUBELET_INITS}")
    if weight.ndim != 4:
        raise ValueError(f"expected a 2-D patch filter of shape (D, C, h, w), got {tuple(weight.shape)}")
    if method == "inflation":
        return weight.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames
    out = weight.new_zeros(weight.shape[0], weight.shape[1], frames, *weight.shape[2:])
    out[:, :, frames // 2] = weight
    return out
