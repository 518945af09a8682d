"""Pretraining and evaluation data for image backbones: images from a class-per-folder tree, or
frames taken from any clip dataset.

A *frame source* is a Dataset of (image float (C, H, W) in [0, 1], label). `ImageFolderFrames`
reads a folder; `ClipFrames` takes any Dataset yielding (clip (C, T, H, W), label, ...) and keeps
`frames_per_clip` evenly spaced frames of each clip. `MultiViewDataset` turns a source into
(views, index) items for pretraining; `EvalDataset` into normalised (image, label) items.

A bad item (an unreadable image, a clip that fails to load) does not stop an epoch: it comes
back as a `BadItem`, which `collate_views` drops from the batch and hands to the training loop
to count and report.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision.datasets import DatasetFolder
from tqdm.auto import tqdm

from ..data.dataset import BadItem  # one bad-item type for the project: index, path, reason
from ..errors import ConfigError
from .augment import IMAGENET_MEAN, IMAGENET_STD, single_thread

__all__ = ["IMAGE_EXTENSIONS", "BadItem", "ImageFolderFrames", "ClipFrames", "MultiViewDataset", "EvalDataset",
           "collate_views", "is_image_folder", "image_folder_splits"]

PathLike = Union[str, os.PathLike]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    """Float (C, H, W) in [0, 1]: shorter side to `size`, then a centre crop."""
    if image.dtype == torch.uint8:
        image = TF.to_dtype(image, torch.float32, scale=True)
    if tuple(image.shape[-2:]) != (size, size):
        image = TF.center_crop(TF.resize(image, [size], antialias=True), [size, size])
    return image


class ImageFolderFrames(Dataset):
    """Images of a class-per-folder tree (torchvision's ImageFolder layout), read with Pillow as
    RGB and fitted to `img_size` x `img_size`: items (image float (3, S, S) in [0, 1], label)."""

    def __init__(self, root: PathLike, img_size: int):
        self.root, self.img_size = Path(root), img_size
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        try:
            self.folder = DatasetFolder(str(self.root), loader=_path_only, extensions=IMAGE_EXTENSIONS)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{self.root}: not a class-per-folder image tree ({err})") from None
        self.classes: List[str] = self.folder.classes
        self.targets: List[int] = list(self.folder.targets)

    def __len__(self) -> int:
        return len(self.folder.samples)

    def path(self, index: int) -> str:
        return self.folder.samples[index][0]

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        path, label = self.folder.samples[index]
        with Image.open(path) as img, single_thread():
            return _fit(TF.pil_to_tensor(img.convert("RGB")), self.img_size), label


def _path_only(path: str) -> str:
    return path


def _unnormalise(clip: torch.Tensor, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> torch.Tensor:
    if mean is None:
        return clip
    m = torch.tensor(mean, dtype=clip.dtype).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=clip.dtype).view(-1, 1, 1, 1)
    return clip * s + m


class ClipFrames(Dataset):
    """Frames of a clip dataset, kept in memory as uint8: items (image float (C, S, S) in
    [0, 1], label of its clip).

    Args:
        clips: any Dataset whose items are (clip, label, ...) with the clip (C, T, H, W) float, or
            (V, C, T, H, W) for several views of one video (frames are taken from each view).
        frames_per_clip: evenly spaced frames kept from each clip (T: all of them).
        img_size: frames are fitted to img_size x img_size.
        mean, std: the normalisation the clip dataset applied, undone here (None: clips are
            already in [0, 1]).
    Clips that fail to load are skipped and listed in `self.failed`.
    """

    def __init__(self, clips: Dataset, frames_per_clip: int, img_size: int, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, progress: bool = False):
        if frames_per_clip < 1:
            raise ConfigError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
        frames: List[torch.Tensor] = []
        labels: List[int] = []
        self.failed: List[BadItem] = []
        for i in tqdm(range(len(clips)), desc="frames from clips", disable=not progress, leave=False):
            try:
                item = clips[i]
            except Exception as err:  # a bad clip is recorded, the rest go on
                self.failed.append(BadItem(i, f"clip {i}", f"{type(err).__name__}: {err}"))
                continue
            if not isinstance(item, (tuple, list)):  # a dataset's own marker for a bad item
                self.failed.append(BadItem(i, str(getattr(item, "path", f"clip {i}")), str(getattr(item, "reason", item))))
                continue
            clip, label = item[0], int(item[1])
            if not isinstance(clip, torch.Tensor) or clip.ndim not in (4, 5):
                shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
                raise ValueError(f"clip dataset item {i}: expected a clip (C, T, H, W) or views (V, C, T, H, W), got {shape}")
            for view in (clip if clip.ndim == 5 else clip[None]):
                view = _unnormalise(view.float(), mean, std)
                lo, hi = view.min().item(), view.max().item()
                if lo < -0.02 or hi > 1.02:
                    raise ValueError(f"clip dataset item {i} has values in [{lo:.3g}, {hi:.3g}], not [0, 1]: pass the "
                                     "mean/std the clip dataset normalised with")
                t = view.shape[1]
                for j in torch.linspace(0, t - 1, min(frames_per_clip, t)).round().long().tolist():
                    frames.append((_fit(view[:, j].clamp(0, 1), img_size) * 255).round().to(torch.uint8))
                    labels.append(label)
        if not frames:
            raise ValueError(f"no frames: all {len(clips)} clips failed to load" if len(clips) else "the clip dataset is empty")
        self.frames = torch.stack(frames)  # (M, C, S, S) uint8
        self.targets = labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        return self.frames[index].float() / 255, self.targets[index]


def _describe(source: Dataset, index: int) -> str:
    base = source.dataset if isinstance(source, Subset) else source
    inner = source.indices[index] if isinstance(source, Subset) else index
    return base.path(inner) if hasattr(base, "path") else f"item {index}"


class _OverSource(Dataset):
    """A dataset over a frame source's (image, label) items; an item the source fails to load
    comes back as a `BadItem` naming it (`collate_views` sets it aside)."""

    def __init__(self, source: Dataset):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            image, label = self.source[index]
        except Exception as err:
            return BadItem(index, _describe(self.source, index), f"{type(err).__name__}: {err}")
        return self.item(image, label, index)

    def item(self, image: torch.Tensor, label: int, index: int) -> Tuple:
        raise NotImplementedError


class MultiViewDataset(_OverSource):
    """(views, index) for pretraining: the source's image through a multi-view transform."""

    def __init__(self, source: Dataset, transform: Callable[[torch.Tensor], List[torch.Tensor]]):
        super().__init__(source)
        self.transform = transform

    def item(self, image: torch.Tensor, label: int, index: int) -> Tuple[List[torch.Tensor], int]:
        return self.transform(image), index


class EvalDataset(_OverSource):
    """(normalised image, label) for feature extraction."""

    def __init__(self, source: Dataset, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__(source)
        self.mean, self.std = list(mean), list(std)

    def item(self, image: torch.Tensor, label: int, index: int) -> Tuple[torch.Tensor, int]:
        return TF.normalize(image, self.mean, self.std), label


def collate_views(items: Sequence) -> Tuple[Optional[Tuple], List[BadItem]]:
    """Stack the good items of a batch, set the bad ones aside: ((stacked...), bad) where the
    stacked part is (views list, indices) or (images, labels), None if nothing was good."""
    good = [it for it in items if not isinstance(it, BadItem)]
    bad = [it for it in items if isinstance(it, BadItem)]
    if not good:
        return None, bad
    first, second = zip(*good)
    if isinstance(first[0], list):  # views
        stacked = [torch.stack([views[v] for views in first]) for v in range(len(first[0]))]
    else:
        stacked = torch.stack(first)
    return (stacked, torch.tensor(second)), bad


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for sub in folder.iterdir() if sub.is_dir() for p in sub.iterdir())


def is_image_folder(root: PathLike) -> bool:
    """A class-per-folder image tree, or one with such trees as train/ (val/, test/) splits."""
    root = Path(root)
    if not root.is_dir():
        return False
    if (root / "train").is_dir():
        return _has_images(root / "train")
    return _has_images(root)


def image_folder_splits(root: PathLike, img_size: int, holdout: float = 0.2) -> Dict[str, Dataset]:
    """{'train': ..., 'val' (or 'test'): ...} frame sources of an image folder.

    With train/ and val/ (or test/) subfolders, those; otherwise the folder is one labelled set,
    split per class: every round(1 / holdout)-th image (in file order) goes to 'val'."""
    root = Path(root)
    if (root / "train").is_dir():
        splits = {"train": ImageFolderFrames(root / "train", img_size)}
        for name in ("val", "test"):
            if (root / name).is_dir():
                splits[name] = ImageFolderFrames(root / name, img_size)
                if splits[name].classes != splits["train"].classes:
                    raise ConfigError(f"{root / name}: classes {splits[name].classes} differ from train's {splits['train'].classes}")
                break
        return splits
    full = ImageFolderFrames(root, img_size)
    step = max(2, round(1 / holdout))
    seen: Dict[int, int] = {}
    train_idx, val_idx = [], []
    for i, label in enumerate(full.targets):
        seen[label] = seen.get(label, 0) + 1
        (val_idx if seen[label] % step == 0 else train_idx).append(i)
    return {"train": _LabelledSubset(full, train_idx), "val": _LabelledSubset(full, val_idx)}


class _LabelledSubset(Subset):
    def __init__(self, dataset: ImageFolderFrames, indices: List[int]):
        super().__init__(dataset, indices)
        self.classes = dataset.classes
        self.targets = [dataset.targets[i] for i in indices]
