"""`VideoClipDataset`: annotation records -> decoded, sampled, transformed clips.

Each item decodes its video (decord, torchcodec or PyAV; or a folder of JPEG frames), picks frame
indices with a `ClipSampler` and transforms them. Training items are one random clip
(C, T, H, W); test items are every view, `num_clips` temporal clips x `num_crops` spatial crops,
stacked as (V, C, T, H, W). A test item decodes each frame it needs once: the frame indices of all
its clips are gathered, sorted and deduplicated, decoded in one call (one pass through the file,
no seek back to an earlier keyframe), and every view is built from those frames.

A bad video (unreadable, corrupt, truncated, empty, shorter than the clip) never stops an epoch
silently or loudly by accident: with ``bad_items="raise"`` the item raises `BadVideoError` naming
the file; with ``"skip"`` it comes back as a `BadItem` that `collate_clips` drops from the batch and
reports, so the training loop can count and warn.

Randomness (start frame, crop, flip) is seeded per (seed, epoch, index), so a clip does not
depend on which worker or process loads it: single- and multi-process runs see the same data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from .annotations import VideoRecord
from .rawframes import is_frame_dir, open_frame_folder
from .sampling import ClipSampler, ClipTooShortError
from .transforms import ClipTransform
from .videoio import BadVideoError, VideoSource, check_backend, default_backend, fallback_backend, open_video

__all__ = ["BAD_ITEM_POLICIES", "BadItem", "ClipBatch", "VideoClipDataset", "collate_clips"]

BAD_ITEM_POLICIES = ("raise", "skip")


class BadItemError(BadVideoError, UserError):
    """``bad_items="raise"``: the video that stopped the run, a user error (one line, exit 2) in
    every command. A DataLoader worker's exception is rebuilt in the main process by calling its
    class with the worker's whole traceback text: its last line (this error's message) is kept."""

    def __init__(self, path: str, reason: Optional[str] = None):
        if reason is None:  # torch's ExceptionWrapper.reraise: "Caught ... Original Traceback ... Class: message"
            last = str(path).strip().splitlines()[-1] if str(path).strip() else ""
            text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith(type(self).__name__) else last
            path, _, reason = text.partition(": ")
        super().__init__(path, reason)


@dataclass(frozen=True)
class BadItem:
    index: int
    path: str
    reason: str


@dataclass
class ClipBatch:
    clips: torch.Tensor  # (B, C, T, H, W) or (B, V, C, T, H, W)
    labels: torch.Tensor  # (B,)
    indices: torch.Tensor  # (B,) dataset indices
    bad: List[BadItem]
    fallbacks: List[str] = field(default_factory=list)  # files decoded by PyAV after decord / torchcodec failed on them

    def __len__(self) -> int:
        return int(self.labels.numel())


def collate_clips(items: Sequence[Union[Tuple[torch.Tensor, int, int], BadItem]]) -> ClipBatch:
    """Stack the good items; keep the bad ones aside (the batch may come out empty)."""
    good = [it for it in items if not isinstance(it, BadItem)]
    bad = [it for it in items if isinstance(it, BadItem)]
    if not good:
        return ClipBatch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), bad)
    clips, labels, indices = zip(*(it[:3] for it in good))
    fallbacks = [it[3] for it in good if len(it) > 3]
    return ClipBatch(torch.stack(clips), torch.tensor(labels), torch.tensor(indices), bad, fallbacks)


class VideoClipDataset(Dataset):
    """Args:
        records: videos and labels (see `read_annotations`).
        sampler: frame indices per clip.
        transform: crops, flips, normalisation.
        train: one random clip per item; otherwise every test view.
        views: (num_clips, num_crops) at test time, e.g. (4, 3).
        backend: 'decord', 'torchcodec', 'pyav' or None (`default_backend`); records that are
            frame folders (`vidbench extract-frames`) are read as JPEGs whatever the backend.
        bad_items: 'raise' or 'skip'.
        no_flip_labels: labels a horizontal flip would change (no flips for them).
        seed: base of the per-item random seeds.
        rotate: frames turned by the container's display rotation, as every backend and FFmpeg's
            tools show them (default); False: as stored.
    """

    def __init__(self, records: Sequence[VideoRecord], sampler: ClipSampler, transform: ClipTransform,
                 train: bool = True, views: Tuple[int, int] = (1, 1), backend: Optional[str] = None,
                 bad_items: str = "skip", no_flip_labels: Collection[int] = (), seed: int = 0,
                 rotate: bool = True):
        if bad_items not in BAD_ITEM_POLICIES:
            raise ValueError(f"bad_items must be one of {BAD_ITEM_POLICIES}, got {bad_items!r}")
        check_backend(backend)  # a backend asked for by name fails here, in one line, not in every worker
        self.records = list(records)
        self.sampler, self.transform, self.train = sampler, transform, train
        self.views = (int(views[0]), int(views[1]))
        self.backend, self.bad_items = backend, bad_items
        self.no_flip_labels = frozenset(no_flip_labels)
        self.seed, self.epoch = seed, 0
        self.rotate = rotate

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Training draws new random clips each epoch (call before making the epoch's iterator)."""
        self.epoch = epoch

    @property
    def labels(self) -> List[int]:
        return [r.label for r in self.records]

    def item_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])

    def __getitem__(self, index: int) -> Union[Tuple[torch.Tensor, int, int], BadItem]:
        record = self.records[index]
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.item_seed(index))
                clip = self._load(record)
        except BadVideoError as err:
            fallback = fallback_backend(self.backend)
            if fallback is None or isinstance(err, ClipTooShortError) or is_frame_dir(record):
                if self.bad_items == "raise":
                    raise BadItemError(err.path, err.reason) from None
                return BadItem(index, err.path, err.reason)
            try:  # decord / torchcodec fail on, or refuse (would decode wrong), files PyAV reads: per file, counted
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.item_seed(index))
                    clip = self._load(record, fallback)
            except BadVideoError:
                if self.bad_items == "raise":
                    raise BadItemError(err.path, err.reason) from None
                return BadItem(index, err.path, err.reason)
            return clip, record.label, index, f"{record.path} ({self.backend or default_backend()}): {err.reason}"
        return clip, record.label, index

    def _open(self, record: VideoRecord, backend: Optional[str] = None) -> VideoSource:
        if is_frame_dir(record):
            return open_frame_folder(record.path, record.num_frames)
        short_side = self.transform.test_short_side if self.transform.decoder_resize and not self.train else None
        return open_video(record.path, backend or self.backend, rotate=self.rotate, short_side=short_side)

    def _load(self, record: VideoRecord, backend: Optional[str] = None) -> torch.Tensor:
        video = self._open(record, backend)
        first = record.start or 0
        last = min(record.end, video.num_frames) if record.end is not None else video.num_frames
        try:
            if self.train:
                clips = [self.sampler.train_indices(last - first)]
            else:
                clips = self.sampler.test_indices(last - first, self.views[0])
        except ClipTooShortError as err:
            where = f" in segment [{first}, {record.end})" if record.start is not None or record.end is not None else ""
            raise ClipTooShortError(record.path, f"{err.reason}{where}") from None
        flat = [first + i for clip in clips for i in clip]
        unique = sorted(set(flat))
        decoded = video.get(unique)  # (U, H, W, C) uint8: each frame once, in file order
        position = {frame: k for k, frame in enumerate(unique)}
        frames = decoded[[position[f] for f in flat]]  # (n_clips * T, H, W, C), every view's frames
        t = self.sampler.num_frames
        if self.train:
            return self.transform.train(frames, allow_flip=record.label not in self.no_flip_labels)
        views: List[Any] = []
        for k in range(len(clips)):
            views.extend(self.transform.test(frames[k * t:(k + 1) * t], self.views[1]))
        return torch.stack(views)  # (V, C, T, H, W), clip-major
