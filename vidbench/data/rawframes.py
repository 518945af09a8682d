"""Raw frames: a video stored as a folder of JPEGs, mmaction2's "rawframes" layout.

A frame folder holds ``img_00001.jpg``, ``img_00002.jpg``, ... (1-based, mmaction2's
``filename_tmpl``); the annotation list names one folder per line with its frame count and label,
``frame_dir total_frames label`` (paths relative to the annotation's directory or `root`).
`vidbench extract-frames` writes both from any dataset. The list is an annotation format, read and
written in `vidbench.data.annotations` (`read_annotations` recognises it by its lines,
`is_rawframe_list`; names re-exported here); the clip dataset reads its records with
`FrameFolderSource`, which decodes only the JPEGs a clip needs.

A folder that is missing, that holds fewer frames than its line says, or whose needed JPEG is
missing or corrupt raises `BadVideoError` naming it, so the dataset skips (and counts) or raises
exactly as for a bad video.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ConfigError
from .annotations import (
    VIDEO_EXTENSIONS,
    FrameDirRecord,
    VideoRecord,
    is_frame_dir,
    is_rawframe_list,
    read_rawframes,
    write_rawframe_list,
)
from .videoio import BadVideoError, PathLike, VideoSource

__all__ = ["FRAME_TEMPLATE", "FrameDirRecord", "FrameFolderSource", "frame_name", "is_frame_dir",
           "is_rawframe_list", "open_frame_folder", "read_rawframes", "write_rawframe_list", "Extraction", "extract_frames"]

FRAME_TEMPLATE = "img_{:05d}.jpg"  # mmaction2's default filename_tmpl, frames numbered from 1


def frame_name(index: int) -> str:
    """File name of 0-based frame `index`."""
    return FRAME_TEMPLATE.format(index + 1)


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


def open_frame_folder(path: PathLike, num_frames: int) -> FrameFolderSource:
    """A frame folder of `num_frames` JPEGs as a video source (the counterpart of `open_video`)."""
    return FrameFolderSource(path, num_frames)


# -- extraction: a dataset's videos -> frame folders + rawframes lists ------------------------------
EXTERNAL = "external"  # where videos outside the dataset directory go, under their common folder


@dataclass(frozen=True)
class _Job:
    video: str
    folder: str  # absolute output folder
    start: Optional[int]
    end: Optional[int]
    quality: int
    backend: Optional[str]


def _under(video: str, bases: Sequence[Path]) -> Optional[PurePosixPath]:
    """The video's path below the first of `bases` that holds it: compared as given (made
    absolute, ``..`` folded), then with symlinks resolved on both sides; None below none."""
    for base in bases:
        for norm in (os.path.abspath, os.path.realpath):
            try:
                return PurePosixPath(Path(norm(video)).relative_to(norm(base)).as_posix())
            except ValueError:
                continue
    return None


def _mmaction_name(part: str) -> str:
    """A path component without whitespace, which mmaction2 splits list lines on (its Kinetics
    tools write class names the same way: each space -> '_')."""
    return re.sub(r"\s", "_", part)


def _folder_names(records: Sequence[VideoRecord], bases: Sequence[Path]) -> Dict[VideoRecord, str]:
    """The output folder of each record, relative to the output root: the video's path under the
    dataset directory (or video_root) without its extension, whitespace -> '_', plus the segment
    (``_<start>-<end>``); videos outside both go under ``external/``, by their path below the
    folder that holds them all."""
    inside = {r: _under(r.path, bases) for r in records}
    outside = [os.path.abspath(r.path) for r, rel in inside.items() if rel is None]
    common = Path(os.path.commonpath([os.path.dirname(v) for v in outside])) if outside else None
    names: Dict[VideoRecord, str] = {}
    for record, rel in inside.items():
        if rel is None:
            rel = PurePosixPath(EXTERNAL) / Path(os.path.abspath(record.path)).relative_to(common).as_posix()
        name = rel.with_suffix("") if rel.suffix.lower() in VIDEO_EXTENSIONS else rel
        if record.start is not None or record.end is not None:
            name = name.with_name(f"{name.name}_{record.start or 0}-{record.end if record.end is not None else 'end'}")
        names[record] = "/".join(_mmaction_name(part) for part in name.parts)
    return names


def _write_frames(job: _Job, backend: Optional[str], chunk: int) -> int:
    """Decode the video (chunk by chunk, in order) into its frame folder, made whole or not at all
    (`results.building`: a failure leaves nothing behind, a finished folder replaces an earlier
    extraction whole, a full disk or read-only --out is one error naming the folder)."""
    from PIL import Image

    from ..results import building
    from .videoio import open_video

    video = open_video(job.video, backend)
    first = job.start or 0
    last = min(job.end, video.num_frames) if job.end is not None else video.num_frames
    if last <= first:
        raise BadVideoError(job.video, f"no frames in [{first}, {last})")
    with building(job.folder) as tmp:
        for lo in range(first, last, chunk):
            frames = video.get(list(range(lo, min(lo + chunk, last)))).numpy()  # (t, H, W, C) uint8
            for k, frame in enumerate(frames):
                Image.fromarray(frame).save(tmp / frame_name(lo - first + k), quality=job.quality)
    return last - first


def _extract(job: _Job, chunk: int = 64) -> Tuple[_Job, int, Optional[str], Optional[str]]:
    """Extract one video: (job, frames, error, fallback note). Where the backend (decord or
    torchcodec) fails on the file and PyAV works here, PyAV extracts it, as the loaders do per
    file; the note says which backend failed and why."""
    from .videoio import default_backend, fallback_backend

    try:
        return job, _write_frames(job, job.backend, chunk), None, None
    except BadVideoError as err:
        fallback = fallback_backend(job.backend)
        if fallback is None:
            return job, 0, err.reason, None
        try:
            count = _write_frames(job, fallback, chunk)
        except BadVideoError as again:
            return job, 0, f"{err.reason}; {fallback}: {again.reason}", None
        return job, count, None, f"{job.video} ({job.backend or default_backend()}): {err.reason}"


def _prune_empty(folder: Path, out: Path) -> None:
    """Remove `folder` and its parents up to `out` (excluded) while they are empty."""
    out = out.resolve()
    folder = folder.resolve()
    while folder != out and out in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


class Extraction(NamedTuple):
    """What `extract_frames` wrote: the output directory, frames per split, the videos and
    annotation lines left out (named), and the files PyAV extracted after the first decoder
    failed on them."""

    out: Path
    totals: Dict[str, int]
    problems: List[str]
    fallbacks: List[str]


def extract_frames(spec, out: PathLike, splits: Optional[Sequence[str]] = None, quality: int = 95,
                   workers: int = 0, backend: Optional[str] = None, progress: bool = False) -> Extraction:
    """Write every video of `splits` (default: all) of the `DataSpec` as JPEG frame folders under
    `out`, a ``<split>_rawframes.txt`` list per split, ``classes.txt`` and a ``dataset.json``
    (the source's groups, no_flip and clip settings), so that `out` is a dataset directory.

    Each video's folder keeps its path under the dataset directory (without the extension;
    whitespace -> '_', so that mmaction2 reads the lists), whatever form `spec.root` or the
    annotations give it in; two videos that would share a folder are refused (ConfigError)
    before anything is written. A video in several splits is extracted once. Unusable videos
    and annotation lines are named in `problems` and left out of the lists, with no folder.
    """
    import json
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from .videoio import check_backend

    if not 1 <= quality <= 100:
        raise ConfigError(f"--quality must be within 1..100, got {quality}")
    check_backend(backend)
    out = Path(out)
    splits = list(splits or spec.splits)
    unknown = [s for s in splits if s not in spec.splits]
    if unknown:
        raise ConfigError(f"{spec.root}: no split {unknown[0]!r} (has {sorted(spec.splits)})")
    if out.resolve() == Path(spec.root).resolve():
        raise ConfigError(f"--out must differ from --data ({out})")
    if out.is_dir() and any(out.iterdir()) and not (out / "dataset.json").is_file():  # as make-dataset refuses
        raise FileExistsError(f"{out} is not empty and holds no extracted dataset (no dataset.json): choose another "
                              "--out")
    problems: List[str] = []
    per_split: Dict[str, List[VideoRecord]] = {}
    for split in splits:
        records, issues = spec.records(split, on_error="skip")
        problems += [str(i) for i in issues]
        per_split[split] = records
        if any(is_frame_dir(r) for r in records):
            raise ConfigError(f"{spec.splits[split]}: already raw frames, nothing to extract")
    bases = [Path(spec.root)] + ([Path(spec.video_root)] if getattr(spec, "video_root", None) else [])
    names = _folder_names([r for records in per_split.values() for r in records], bases)
    jobs: Dict[str, _Job] = {}
    source: Dict[str, Tuple[str, Optional[int], Optional[int]]] = {}
    for record, folder in names.items():
        same = (os.path.realpath(record.path), record.start, record.end)
        if folder in source and source[folder] != same:
            raise ConfigError(f"{jobs[folder].video} and {record.path} would both be extracted to {out / folder} "
                              "(folders drop the extension and write '_' for whitespace): rename one of them")
        source[folder] = same
        jobs.setdefault(folder, _Job(record.path, str(out / folder), record.start, record.end, quality, backend))
    from ..results import writing

    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    done: Dict[str, int] = {}
    fallbacks: List[str] = []
    failed: List[Path] = []  # parents of folders not written: removed once every job is over, where empty
    todo = list(jobs.values())
    bar = tqdm(total=len(todo), desc="extract-frames", unit="video", disable=not progress)

    def record_result(job: _Job, count: int, error: Optional[str], note: Optional[str]) -> None:
        done[job.folder] = count
        if error:
            problems.append(f"{job.video}: {error}")
            failed.append(Path(job.folder).parent)
        if note:
            fallbacks.append(note)
        bar.update()

    if workers > 0:
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(_extract, todo, chunksize=4):
                record_result(*result)
    else:
        for job in todo:
            record_result(*_extract(job))
    bar.close()
    for folder in failed:
        _prune_empty(folder, out)
    totals: Dict[str, int] = {}
    for split, records in per_split.items():
        rows = [(names[r], done[str(out / names[r])], r.label) for r in records if done.get(str(out / names[r]))]
        write_rawframe_list(out / f"{split}_rawframes.txt", rows)
        totals[split] = sum(r[1] for r in rows)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in spec.classes))
    manifest = {"label_map": "classes.txt", "splits": {s: f"{s}_rawframes.txt" for s in per_split},
                "groups": spec.groups, "no_flip": spec.no_flip, "clip": spec.clip,
                "source": {"data": str(Path(spec.root).resolve()), "format": "rawframes", "template": FRAME_TEMPLATE,
                           "quality": quality, "decoder_fallbacks": len(fallbacks)}}
    (out / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Extraction(out, totals, problems, fallbacks)
