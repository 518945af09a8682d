"""Dataset audit (`vidbench check-data`): every file a dataset's splits name, probed and decoded
before a training run meets it. Measurement only: rows (dicts, `COLUMNS`) and a summary; the
command writes the CSV and prints the table. `PROBLEMS` lists each finding's severity: errors
would corrupt training or evaluation, warnings would not.

Per file: container, codec, size, pixel format, frame rate (variable or not), frame count from
the packets (as `videoio` counts; fewer than the header lists: truncated), duration, rotation,
keyframe spacing (mean / max GOP), B-frames (packets out of presentation order), a content hash
(size + BLAKE2b), and per backend asked for: does it open the file and decode `sample_frames`
frames (else its `BadVideoError` reason), and how far are they from PyAV's. The sampled frames
are spread over the file, each at most `SAMPLE_REACH` frames past a keyframe: every backend seeks
and reorders B-frames, but none decodes a long GOP (the last frame of a 250-frame GOP cost ~4x
the rest of a Kinetics-like file's audit). Decode errors away from those frames are not seen.

Per dataset: annotation problems (`AnnotationIssue`s, classified by their text), a file in two
splits, identical bytes in two splits or twice in one, classes without videos, segments outside
their video, clips shorter than the sampler needs (when one is given).
"""
from __future__ import annotations

import bisect
import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError
from .rawframes import is_frame_dir, open_frame_folder
from .spec import DataSpec
from .videoio import BACKENDS, BadVideoError, open_video

__all__ = ["AuditSummary", "COLUMNS", "DUPLICATE_KEYS", "FileJob", "LONG_GOP_S", "MAX_DIFF", "PROBLEMS", "audit_file", "audit_files",
           "cross_file_rows", "plan_audit"]

MAX_DIFF = 2  # uint8 levels two decoders may differ by (rounding in the YUV->RGB conversion)
SAMPLE_REACH = 4  # sampled frames lie at most this far past a keyframe: B-frames decoded, no long decode
LONG_GOP_S = 10.0  # keyframes further apart than this (seconds) make every random seek slow
PROBLEMS: Dict[str, Tuple[str, str]] = {  # kind -> (severity, meaning)
    "missing": ("error", "video file not found"),
    "empty": ("error", "zero-byte file"),
    "unreadable": ("error", "no backend opens and decodes it"),
    "truncated": ("error", "fewer frames than the container's header promises"),
    "count_mismatch": ("error", "backends count different frames (frame i is not the same frame)"),
    "backend_mismatch": ("error", f"backends decode the sampled frames differently (> {MAX_DIFF} levels or shape)"),
    "too_short": ("error", "fewer frames than the clip sampler needs"),
    "bad_segment": ("error", "annotated segment empty, malformed or beyond the video"),
    "unknown_label": ("error", "label not in the label map"),
    "bad_annotation": ("error", "annotation line that cannot be read"),
    "in_two_splits": ("error", "the same file listed in two splits"),
    "same_content_in_splits": ("error", "identical bytes in two splits under different paths"),
    "backend_refused": ("warning", "a backend refuses it or fails (the dataset falls back to PyAV per file)"),
    "duplicate": ("warning", "identical bytes under another path in the same split"),
    "duplicate_line": ("warning", "annotation line repeated (kept once)"),
    "empty_class": ("warning", "class with no videos in a split"),
    "rotation": ("warning", "display rotation set (vidbench turns the frames in every backend; tools that ignore it see them sideways)"),
    "vfr": ("warning", "variable frame rate (frame index is not time)"),
    "odd_size": ("warning", "odd width or height"),
    "long_gop": ("warning", f"keyframes more than {LONG_GOP_S:g} s apart (slow seeks)"),
}
COLUMNS = ["status", "problems", "path", "split", "label", "container", "codec", "width", "height", "pix_fmt", "fps",
           "vfr", "frames", "header_frames", "duration_s", "rotation", "gop_mean", "gop_max", "b_frames", "bytes",
           "hash", *BACKENDS, "max_diff", "detail", "seconds"]


@dataclass(frozen=True)
class FileJob:
    """One file to audit (each path once, whatever the number of records naming it)."""

    path: str
    splits: Tuple[str, ...]
    labels: Tuple[str, ...]
    segments: Tuple[Tuple[Optional[int], Optional[int]], ...]  # (start, end) of each record
    backends: Tuple[str, ...]
    sample_frames: int = 4
    span: Optional[int] = None  # frames the clip sampler needs (None: not checked)
    frame_dir: Optional[int] = None  # a rawframes folder: its annotated frame count


def _row(path: str = "", split: str = "", label: str = "", **values: object) -> Dict[str, object]:
    row: Dict[str, object] = {c: "" for c in COLUMNS}
    row.update(path=path, split=split, label=label, **values)
    return row


def _finish(row: Dict[str, object], problems: Sequence[Tuple[str, str]]) -> Dict[str, object]:
    kinds = list(dict.fromkeys(kind for kind, _ in problems))
    severities = {PROBLEMS[k][0] for k in kinds}
    row["status"] = "error" if "error" in severities else "warning" if severities else "ok"
    row["problems"] = ";".join(kinds)
    row["detail"] = "; ".join(detail for _, detail in problems)
    return row


def _issue_kind(text: str) -> str:
    """The kind of an `AnnotationIssue` (the readers give messages, not kinds)."""
    if "video file not found" in text or "frame folder not found" in text:
        return "missing"
    if "label map" in text or "no label" in text:
        return "unknown_label"
    if "duplicate of line" in text:
        return "duplicate_line"
    if "segment" in text or "start/end" in text:
        return "bad_segment"
    return "bad_annotation"


@dataclass
class AuditPlan:
    jobs: List[FileJob]
    rows: List[Dict[str, object]]  # findings known before any file is opened (annotations, classes)


def plan_audit(spec: DataSpec, splits: Optional[Sequence[str]] = None, backends: Sequence[str] = ("pyav",),
               sample_frames: int = 4, span: Optional[int] = None) -> AuditPlan:
    """Read every split's annotations (problems become rows) and list the files to audit."""
    splits = list(splits or spec.splits)
    unknown = [s for s in splits if s not in spec.splits]
    if unknown:
        raise ConfigError(f"{spec.root}: no split {unknown[0]!r} (has {sorted(spec.splits)})")
    rows: List[Dict[str, object]] = []
    files: Dict[str, dict] = {}
    per_class: Dict[str, Counter] = {s: Counter() for s in splits}
    for split in splits:
        records, issues = spec.records(split, on_error="skip")
        for issue in issues:
            kind = _issue_kind(issue.message)
            path = issue.message.split("video file not found: ", 1)[-1] if kind == "missing" else ""
            rows.append(_finish(_row(path, split), [(kind, str(issue))]))
        for rec in records:
            entry = files.setdefault(rec.path, {"splits": [], "labels": [], "segments": [],
                                                "frame_dir": getattr(rec, "num_frames", 0) if is_frame_dir(rec) else None})
            name = spec.classes[rec.label]
            entry["splits"] += [split] if split not in entry["splits"] else []
            entry["labels"] += [name] if name not in entry["labels"] else []
            entry["segments"].append((rec.start, rec.end))
            per_class[split][name] += 1
    for name in spec.classes:
        empty = [s for s in splits if per_class[s][name] == 0]
        if empty:
            rows.append(_finish(_row(label=name, split=";".join(empty)),
                                [("empty_class", f"class {name!r} has no videos in {', '.join(empty)}")]))
    jobs = [FileJob(path, tuple(e["splits"]), tuple(e["labels"]), tuple(e["segments"]), tuple(backends),
                    sample_frames, span, e["frame_dir"]) for path, e in files.items()]
    return AuditPlan(jobs, rows)


def _hash(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _probe(path: str) -> Dict[str, object]:
    """Stream facts from PyAV's demuxer (no decoding but the first frame, for rotation and pixel
    format); raises on a file it cannot parse."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size > 0]
        header = int(stream.frames or 0)
        names, ext = container.format.name.split(","), os.path.splitext(path)[1].lower().lstrip(".")
        fmt = ext if ext in names else names[0]  # "mov,mp4,m4a,..." -> the file's own where listed
        seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        codec, width, height = ctx.name, ctx.width, ctx.height
    if not packets or any(pts is None for pts, _ in packets):
        raise ValueError("no packets" if not packets else "packets without timestamps")
    with av.open(path) as container:  # the first frame: display rotation and pixel format
        frame = next(container.decode(video=0))
        rotation, pix_fmt = int(round(getattr(frame, "rotation", 0) or 0)), frame.format.name
    pts = [p for p, _ in packets]
    order = sorted(pts)
    index = {p: i for i, p in enumerate(order)}
    keys = sorted(index[p] for p, key in packets if key) or [0]
    spacing = np.diff([*keys, len(order)])
    deltas = np.diff(order)
    median = float(np.median(deltas)) if len(deltas) else 0.0
    vfr = bool(len(deltas) and np.abs(deltas - median).max() > max(1.0, 0.05 * median))
    return {"container": fmt, "codec": codec, "width": width, "height": height, "pix_fmt": pix_fmt,
            "fps": round(fps, 3), "vfr": vfr, "frames": len(order), "header_frames": header,
            "duration_s": round(seconds, 3), "rotation": rotation, "gop_mean": round(len(order) / len(keys), 1),
            "gop_max": int(spacing.max()), "b_frames": any(b < a for a, b in zip(pts, pts[1:])), "keyframes": keys}


def _sample(num_frames: int, k: int, keys: Optional[Sequence[int]] = None) -> List[int]:
    """`k` frames spread over the video, each moved back to at most `SAMPLE_REACH` frames after
    the keyframe before it where the keyframes are known (a seek and a short decode each)."""
    targets = {int(round(i)) for i in np.linspace(0, num_frames - 1, max(k, 1))}
    if keys:
        targets = {min(t, keys[max(bisect.bisect_right(keys, t) - 1, 0)] + SAMPLE_REACH) for t in targets}
    return sorted(targets)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def _decode(job: FileJob, row: Dict[str, object], problems: List[Tuple[str, str]], frames: Optional[int],
            keys: Optional[List[int]]) -> Optional[int]:
    """Open and decode the sampled frames with each backend; compare them. The frame count used
    for the segment checks (None: nothing reads the file)."""
    decoded: Dict[str, np.ndarray] = {}
    counts: Dict[str, int] = {}
    refused: List[str] = []
    for backend in job.backends:
        try:  # any failure of a decoder on a file is a finding about that file, not a crash of the audit
            source = open_video(job.path, backend)
            counts[backend] = source.num_frames
            decoded[backend] = source.get(_sample(frames or source.num_frames, job.sample_frames, keys)).numpy()
            row[backend] = "ok"
        except BadVideoError as err:
            row[backend], _ = err.reason, refused.append(f"{backend}: {err.reason}")
        except Exception as err:
            row[backend], _ = _first_line(err), refused.append(f"{backend}: {_first_line(err)}")
    if not decoded:
        problems.append(("unreadable", "; ".join(refused)))
        return None
    if refused:
        problems.append(("backend_refused", "; ".join(refused)))
    if len(set(counts.values())) > 1:
        problems.append(("count_mismatch", ", ".join(f"{b} {n}" for b, n in counts.items()) + " frames"))
    reference = "pyav" if "pyav" in decoded else next(iter(decoded))
    ref = decoded[reference].astype(np.int16)
    worst = 0
    for backend, frames_b in decoded.items():
        if backend == reference:
            continue
        if frames_b.shape != ref.shape:
            problems.append(("backend_mismatch", f"{backend} gives frames of {frames_b.shape[1:3]} (H, W), "
                                                 f"{reference} {ref.shape[1:3]}"))
            continue
        diff = int(np.abs(frames_b.astype(np.int16) - ref).max())
        worst = max(worst, diff)
        if diff > MAX_DIFF:
            problems.append(("backend_mismatch", f"{backend} differs from {reference} by up to {diff} levels"))
    row["max_diff"] = worst if len(decoded) > 1 else ""
    return counts[reference]


def _audit_video(job: FileJob, row: Dict[str, object], problems: List[Tuple[str, str]]) -> Optional[int]:
    if not os.path.isfile(job.path):
        problems.append(("missing", "file not found"))
        return None
    row["bytes"] = size = os.path.getsize(job.path)
    if size == 0:
        problems.append(("empty", "0 bytes"))
        return None
    row["hash"] = _hash(job.path)
    try:
        facts, probe_error = _probe(job.path), ""
    except Exception as err:  # the backends below say whether anything reads it
        facts, probe_error = {}, _first_line(err)
    keys = facts.pop("keyframes", None)
    row.update(facts)
    if facts:
        f = facts
        checks = [("truncated", f["header_frames"] > f["frames"],
                   f"{f['frames']} of the {f['header_frames']} frames the header lists are there"),
                  ("rotation", f["rotation"], f"displayed rotated by {f['rotation']} degrees"),
                  ("vfr", f["vfr"], "frame timestamps are not evenly spaced"),
                  ("odd_size", int(f["width"]) % 2 or int(f["height"]) % 2, f"{f['width']}x{f['height']}"),
                  ("long_gop", f["gop_max"] > LONG_GOP_S * float(f["fps"] or "inf"),
                   f"up to {f['gop_max']} frames between keyframes")]
        problems += [(kind, text) for kind, hit, text in checks if hit]
    count = _decode(job, row, problems, facts.get("frames"), keys)
    if count is not None and probe_error and "pyav" not in job.backends:  # else pyav's own failure says it
        problems.append(("backend_refused", f"PyAV cannot parse the stream ({probe_error})"))
    return count


def _audit_frames(job: FileJob, row: Dict[str, object], problems: List[Tuple[str, str]]) -> Optional[int]:
    try:
        source = open_frame_folder(job.path, int(job.frame_dir or 0))
        frames = source.get(_sample(source.num_frames, job.sample_frames)).numpy()
    except BadVideoError as err:
        problems.append(("missing" if "not found" in err.reason else "unreadable", err.reason))
        return None
    row.update(container="rawframes", codec="jpeg", frames=source.num_frames, height=frames.shape[1],
               width=frames.shape[2])
    return source.num_frames


def audit_file(job: FileJob) -> Dict[str, object]:
    """One CSV row: the file's facts and problems (status: ok, warning or error)."""
    tic = time.perf_counter()
    row = _row(job.path, ";".join(job.splits), ";".join(job.labels))
    problems: List[Tuple[str, str]] = []
    if len(job.splits) > 1:
        problems.append(("in_two_splits", f"listed in {', '.join(job.splits)}"))
    count = _audit_frames(job, row, problems) if job.frame_dir is not None else _audit_video(job, row, problems)
    for start, end in job.segments if count is not None else ():
        first = start or 0
        last = min(end, count) if end is not None else count
        where = f" in segment [{start}, {end})" if start is not None or end is not None else ""
        if first >= count or (end is not None and end > count):
            problems.append(("bad_segment", f"segment [{start}, {end}) is beyond the {count} frames"))
        elif job.span is not None and last - first < job.span:
            problems.append(("too_short", f"{last - first} frames{where}, the clip needs {job.span}"))
    row["seconds"] = round(time.perf_counter() - tic, 4)
    return _finish(row, problems)


def audit_files(jobs: Sequence[FileJob], workers: int = 0) -> Iterator[Dict[str, object]]:
    """`audit_file` of each job, in order, in `workers` processes (0: this one)."""
    if workers < 0:
        raise ConfigError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        yield from map(audit_file, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fork of a process whose decoders already ran threads hung (seen with workers after an in-process audit)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(audit_file, jobs, chunksize=max(1, min(16, len(jobs) // (8 * workers))))


DUPLICATE_KEYS = ("path", "split", "label", "bytes", "hash")  # what `cross_file_rows` reads of a row


def cross_file_rows(rows: Iterable[Dict[str, object]]) -> List[Dict[str, object]]:
    """Identical bytes (size + hash) under several paths: in two splits an error, else a warning.
    `rows` need only the `DUPLICATE_KEYS` (300k full rows would take ~1 GB)."""
    groups: Dict[Tuple[object, object], List[Dict[str, object]]] = {}
    for row in rows:
        if row.get("hash"):
            groups.setdefault((row["bytes"], row["hash"]), []).append(row)
    out = []
    for same in groups.values():
        first = same[0]
        for other in same[1:]:
            across = set(str(first["split"]).split(";")) != set(str(other["split"]).split(";"))
            kind = "same_content_in_splits" if across else "duplicate"
            out.append(_finish(_row(str(other["path"]), str(other["split"]), str(other["label"]),
                                    bytes=other["bytes"], hash=other["hash"]),
                               [(kind, f"same bytes as {first['path']} ({first['split']})")]))
    return out


@dataclass
class AuditSummary:
    files: int  # files audited
    seconds: float = 0.0
    problems: Counter = field(default_factory=Counter)  # kind -> rows naming it
    formats: Counter = field(default_factory=Counter)  # "codec/container" -> files
    errors: int = 0  # rows with an error
    warnings: int = 0  # rows with warnings only

    def add(self, row: Dict[str, object]) -> None:
        self.problems.update(k for k in str(row["problems"]).split(";") if k)
        if row["codec"]:
            self.formats[f"{row['codec']}/{row['container']}"] += 1
        self.errors += row["status"] == "error"
        self.warnings += row["status"] == "warning"

    @property
    def failed(self) -> bool:
        return self.errors > 0

