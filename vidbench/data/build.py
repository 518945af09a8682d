"""Datasets for a split of a `DataSpec`, with the manifest's clip settings unless overridden, and the
DataLoader every loop reads them with (`make_loader`: training, evaluation, the end-to-end bench step)."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from torch.utils.data import DataLoader

from ..errors import ConfigError
from .annotations import AnnotationIssue
from .dataset import VideoClipDataset, collate_clips
from .sampling import ClipSampler
from .spec import DataSpec
from .transforms import ClipTransform

__all__ = ["build_dataset", "clip_settings", "make_loader"]


def clip_settings(spec: DataSpec, num_frames: Optional[int] = None, stride: Optional[int] = None,
                  sampling: Optional[str] = None, size: Optional[int] = None) -> Tuple[ClipSampler, int]:
    """The sampler and crop size: explicit values, else the dataset manifest's."""
    clip = spec.clip

    def pick(value: Optional[int], key: str) -> int:  # 0 is an error, never "the default"
        value = int(clip[key] if value is None else value)
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
        return value

    sampler = ClipSampler(pick(num_frames, "num_frames"), pick(stride, "stride"), str(sampling or clip["mode"]))
    return sampler, pick(size, "size")


def build_dataset(spec: DataSpec, split: str, train: bool, views: Tuple[int, int] = (1, 1),
                  sampler: Optional[ClipSampler] = None, size: Optional[int] = None, backend: Optional[str] = None,
                  bad_items: str = "skip", seed: int = 0, transform: Optional[ClipTransform] = None,
                  rotate: bool = True) -> Tuple[VideoClipDataset, List[AnnotationIssue]]:
    """The clip dataset of `split` and the annotation problems met reading it (with
    ``bad_items="raise"`` those raise instead). `transform` replaces the default one (ImageNet
    normalisation, crop `size`), e.g. with a checkpoint's own preprocessing; `rotate=False` reads
    frames as stored, ignoring the container's display rotation (see `open_video`)."""
    default_sampler, default_size = clip_settings(spec)
    records, issues = spec.records(split, on_error=bad_items)
    transform = transform or ClipTransform(size=size or default_size)
    dataset = VideoClipDataset(records, sampler or default_sampler, transform,
                               train=train, views=views, backend=backend, bad_items=bad_items,
                               no_flip_labels=spec.no_flip_labels(), seed=seed, rotate=rotate)
    return dataset, issues


def make_loader(dataset: Any, batch_size: int, num_workers: int, sampler: Any, pin_memory: bool = False,
                persistent_workers: bool = False) -> DataLoader:
    """The DataLoader of a clip dataset: batches of `collate_clips` (bad items set aside), the last
    one short. `persistent_workers` (with workers): kept across passes (the end-to-end bench cycles
    a small split several times; training starts them once per epoch)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, pin_memory=pin_memory, drop_last=False,
                      persistent_workers=persistent_workers and num_workers > 0)
