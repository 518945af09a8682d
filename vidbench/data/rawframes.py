"""Raw frames: a video stored as a folder of JPEGs, mmaction2's "rawframes" layout.

A frame folder holds ``img_00001.jpg``, ``img_00002.jpg``, ... (1-based, mmaction2's
``filename_tmpl``); the annotation list names one folder per line with its frame count and label,
``frame_dir total_frames label`` (paths relative to the annotation's directory or `root`).
`vidbench extract-frames` writes both from any dataset; `read_annotations` recognises the list by
its lines (`is_rawframe_list`), and the clip dataset reads such records with `FrameFolderSource`,
which decodes only the JPEGs a clip needs.

A folder that is missing, that holds fewer frames than its line says, or whose needed JPEG is
missing or corrupt raises `BadVideoError` naming it, so the dataset skips (and counts) or raises
exactly as for a bad video.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ConfigError
from .annotations import VIDEO_EXTENSIONS, AnnotationIssue, LabelMap, VideoRecord
from .videoio import BadVideoError, PathLike, VideoSource

__all__ = ["FRAME_TEMPLATE", "FrameDirRecord", "FrameFolderSource", "frame_name", "is_frame_dir",
           "is_rawframe_list", "open_frames", "read_rawframes", "write_rawframe_list"]

FRAME_TEMPLATE = "img_{:05d}.jpg"  # mmaction2's default filename_tmpl, frames numbered from 1


def frame_name(index: int) -> str:
    """File name of 0-based frame `index`."""
    return FRAME_TEMPLATE.format(index + 1)


@dataclass(frozen=True)
class FrameDirRecord(VideoRecord):
    """A record whose `path` is a frame folder holding `num_frames` JPEGs."""

    num_frames: int = 0


def is_frame_dir(record: VideoRecord) -> bool:
    return isinstance(record, FrameDirRecord)


class FrameFolderSource(VideoSource):
    """`num_frames` from the annotation, checked against the folder; `get` decodes only the
    requested JPEGs (each once) with Pillow."""

    def __init__(self, path: PathLike, num_frames: int):
        self.path = str(path)
        if not os.path.isdir(self.path):
            raise BadVideoError(path, "frame folder not found")
        present = sum(1 for name in os.listdir(self.path) if name.startswith("img_") and name.endswith(".jpg"))
        if num_frames < 1:
            raise BadVideoError(path, f"total_frames must be >= 1, got {num_frames}")
        if present < num_frames:
            raise BadVideoError(path, f"annotation says {num_frames} frames, folder holds {present} JPEGs")
        self.num_frames = int(num_frames)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        idx = self._check(indices)
        frames: Dict[int, np.ndarray] = {}
        for i in sorted(set(idx)):
            file = os.path.join(self.path, frame_name(i))
            try:
                with Image.open(file) as image:
                    frames[i] = np.asarray(image.convert("RGB"))  # (H, W, C) uint8
            except FileNotFoundError:
                raise BadVideoError(self.path, f"frame {frame_name(i)} is missing") from None
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise BadVideoError(self.path, f"frame {frame_name(i)} is not a readable JPEG "
                                               f"({str(err).strip().splitlines()[0][:120]})") from None
        sizes = {tuple(f.shape) for f in frames.values()}
        if len(sizes) > 1:
            raise BadVideoError(self.path, f"frames differ in size: {sorted(sizes)}")
        return torch.from_numpy(np.stack([frames[i] for i in idx]))  # (T, H, W, C) uint8


def open_frames(path: PathLike, num_frames: int) -> FrameFolderSource:
    return FrameFolderSource(path, num_frames)


def _data_lines(path: Path) -> List[Tuple[int, str]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [(n, ln.strip()) for n, ln in enumerate(lines, start=1) if ln.strip() and not ln.strip().startswith("#")]


def _is_rawframe_line(text: str) -> bool:
    parts = text.rsplit(maxsplit=2)
    return (len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip("-").isdigit()
            and not parts[0].lower().endswith(VIDEO_EXTENSIONS))


def is_rawframe_list(path: PathLike, probe: int = 20) -> bool:
    """True for an mmaction2 rawframes list: its first `probe` lines all read ``dir frames label``
    (two integer fields after a path that is not a video file)."""
    path = Path(path)
    if path.suffix.lower() == ".csv" or not path.is_file():
        return False
    lines = _data_lines(path)[:probe]
    return bool(lines) and all(_is_rawframe_line(text) for _, text in lines)


def read_rawframes(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None
                   ) -> Tuple[List[VideoRecord], List[AnnotationIssue]]:
    """mmaction2 rawframes list: ``frame_dir total_frames label`` per line. Folders are not
    opened here (a missing one becomes a bad item when loaded, named and counted)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records: List[VideoRecord] = []
    issues: List[AnnotationIssue] = []
    seen: Dict[str, int] = {}
    for line_no, text in _data_lines(path):
        if not _is_rawframe_line(text):
            issues.append(AnnotationIssue(str(path), line_no, f"expected 'frame_dir total_frames label', got {text!r}"))
            continue
        folder, total, label = text.rsplit(maxsplit=2)
        try:
            label_id = labels.lookup(label)
        except KeyError as err:
            issues.append(AnnotationIssue(str(path), line_no, err.args[0]))
            continue
        full = Path(folder)
        full = str(full if full.is_absolute() else root / full)
        if full in seen:
            issues.append(AnnotationIssue(str(path), line_no, f"duplicate of line {seen[full]} (kept once)"))
            continue
        seen[full] = line_no
        records.append(FrameDirRecord(full, label_id, num_frames=int(total)))
    return records, issues


def write_rawframe_list(path: PathLike, rows: Sequence[Tuple[str, int, int]]) -> Path:
    """Write ``frame_dir total_frames label`` lines (label ids, as mmaction2 does)."""
    path = Path(path)
    path.write_text("".join(f"{folder} {total} {label}\n" for folder, total, label in rows))
    return path


# -- extraction: a dataset's videos -> frame folders + rawframes lists ------------------------------
@dataclass(frozen=True)
class _Job:
    video: str
    folder: str  # absolute output folder
    start: Optional[int]
    end: Optional[int]
    quality: int
    backend: Optional[str]


def _folder_name(record: VideoRecord, root: Path) -> str:
    """The output folder of a record, relative to the output root: the video's path under the
    dataset root without its extension (its stem where it lies elsewhere), plus the segment."""
    video = Path(record.path)
    try:
        name = video.relative_to(root).with_suffix("")
    except ValueError:
        name = Path(video.stem)
    if record.start is not None or record.end is not None:
        name = name.with_name(f"{name.name}_{record.start or 0}-{record.end if record.end is not None else 'end'}")
    return name.as_posix()


def _extract(job: _Job, chunk: int = 64) -> Tuple[_Job, int, Optional[str]]:
    """Decode the video (chunk by chunk, in order) and write its frames; (job, frames, error)."""
    from PIL import Image

    from .videoio import open_video

    try:
        video = open_video(job.video, job.backend)
        first = job.start or 0
        last = min(job.end, video.num_frames) if job.end is not None else video.num_frames
        if last <= first:
            raise BadVideoError(job.video, f"no frames in [{first}, {last})")
        os.makedirs(job.folder, exist_ok=True)
        for lo in range(first, last, chunk):
            frames = video.get(list(range(lo, min(lo + chunk, last)))).numpy()  # (t, H, W, C) uint8
            for k, frame in enumerate(frames):
                Image.fromarray(frame).save(os.path.join(job.folder, frame_name(lo - first + k)), quality=job.quality)
    except BadVideoError as err:
        return job, 0, err.reason
    return job, last - first, None


def extract_frames(spec, out: PathLike, splits: Optional[Sequence[str]] = None, quality: int = 95,
                   workers: int = 0, backend: Optional[str] = None, progress: bool = False
                   ) -> Tuple[Path, Dict[str, int], List[str]]:
    """Write every video of `splits` (default: all) of the `DataSpec` as JPEG frame folders under
    `out`, a ``<split>_rawframes.txt`` list per split, ``classes.txt`` and a ``dataset.json``
    (the source's groups, no_flip and clip settings), so that `out` is a dataset directory.

    Returns (out, frames per split, problems): unusable videos and annotation lines are named
    in `problems` and left out of the lists. A video in several splits is extracted once.
    """
    import json
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    if not 1 <= quality <= 100:
        raise ConfigError(f"--quality must be within 1..100, got {quality}")
    out = Path(out)
    splits = list(splits or spec.splits)
    unknown = [s for s in splits if s not in spec.splits]
    if unknown:
        raise ConfigError(f"{spec.root}: no split {unknown[0]!r} (has {sorted(spec.splits)})")
    if out.resolve() == Path(spec.root).resolve():
        raise ConfigError(f"--out must differ from --data ({out})")
    problems: List[str] = []
    per_split: Dict[str, List[VideoRecord]] = {}
    jobs: Dict[str, _Job] = {}
    root = Path(spec.root).resolve()
    for split in splits:
        records, issues = spec.records(split, on_error="skip")
        problems += [str(i) for i in issues]
        per_split[split] = records
        for record in records:
            if is_frame_dir(record):
                raise ConfigError(f"{spec.splits[split]}: already raw frames, nothing to extract")
            folder = _folder_name(record, root)
            jobs.setdefault(folder, _Job(record.path, str(out / folder), record.start, record.end, quality, backend))
    out.mkdir(parents=True, exist_ok=True)
    done: Dict[str, int] = {}
    todo = list(jobs.values())
    bar = tqdm(total=len(todo), desc="extract-frames", unit="video", disable=not progress)
    if workers > 0:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_extract, todo, chunksize=4)
            for job, count, error in results:
                done[job.folder] = count
                if error:
                    problems.append(f"{job.video}: {error}")
                bar.update()
    else:
        for job in todo:
            _, count, error = _extract(job)
            done[job.folder] = count
            if error:
                problems.append(f"{job.video}: {error}")
            bar.update()
    bar.close()
    totals: Dict[str, int] = {}
    for split, records in per_split.items():
        rows = []
        for record in records:
            folder = _folder_name(record, root)
            if done.get(str(out / folder)):
                rows.append((folder, done[str(out / folder)], record.label))
        write_rawframe_list(out / f"{split}_rawframes.txt", rows)
        totals[split] = sum(r[1] for r in rows)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in spec.classes))
    manifest = {"label_map": "classes.txt", "splits": {s: f"{s}_rawframes.txt" for s in per_split},
                "groups": spec.groups, "no_flip": spec.no_flip, "clip": spec.clip,
                "source": {"data": str(spec.root), "format": "rawframes", "template": FRAME_TEMPLATE,
                           "quality": quality}}
    (out / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out, totals, problems
