"""Small hand-made image data for the self-supervised tests: class k lights up quadrant k of a
noisy image in a random colour, so the class survives crops, flips and colour jitter only in part
and a backbone has something to learn in a few steps."""
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

TINY_BACKBONE = dict(img_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2)


def quadrant_images(n: int = 128, size: int = 16, classes: int = 4, seed: int = 0):
    """(images float (n, 3, size, size) in [0, 1], labels (n,))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 0.3
    y = torch.arange(n) % classes
    h = size // 2
    for i in range(n):
        r, c = divmod(int(y[i]) % 4, 2)
        x[i, :, r * h:(r + 1) * h, c * h:(c + 1) * h] += torch.rand(3, 1, 1, generator=g) * 0.7
    return x.clamp(0, 1), y


class TensorImages(Dataset):
    """A frame source over tensors: (image, label)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def write_image_folder(root: Path, n: int = 64, size: int = 16, classes: int = 4, seed: int = 0) -> Path:
    """root/<class>/<i>.png"""
    x, y = quadrant_images(n, size, classes, seed)
    for i in range(n):
        d = root / f"class{int(y[i])}"
        d.mkdir(parents=True, exist_ok=True)
        pixels = (x[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
        Image.fromarray(pixels).save(d / f"{i:04d}.png")
    return root
