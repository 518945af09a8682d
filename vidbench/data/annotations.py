"""Annotation formats users already have, read into `VideoRecord`s with a label map.

- CSV with a header: ``path,label[,start,end]`` (start/end: frame indices, end exclusive);
- mmaction2 video lists: one ``path label`` per line (space separated, ``#`` comments);
- a class-per-folder tree (Kinetics / UCF101 layout): ``root/<class>/<video>``.

Labels are class names from the label map or integer ids. Relative paths resolve against `root`.
Problems (a label outside the map, a missing file, a malformed line) are collected as
`AnnotationIssue`s naming the file and line; `on_error="raise"` turns them into one error.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = ["AnnotationError", "AnnotationIssue", "LabelMap", "VideoRecord", "read_annotations", "read_csv",
           "read_folder", "read_list", "VIDEO_EXTENSIONS"]

PathLike = Union[str, os.PathLike]
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


@dataclass(frozen=True)
class VideoRecord:
    path: str  # absolute
    label: int
    start: Optional[int] = None  # first frame of the annotated segment
    end: Optional[int] = None  # one past its last frame


@dataclass(frozen=True)
class AnnotationIssue:
    source: str  # annotation file (or folder)
    line: int  # 1-based; 0 for a folder tree
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


class AnnotationError(ValueError):
    def __init__(self, issues: Sequence[AnnotationIssue]):
        shown = "\n  ".join(str(i) for i in issues[:20])
        more = f"\n  ... and {len(issues) - 20} more" if len(issues) > 20 else ""
        super().__init__(f"{len(issues)} annotation problem(s):\n  {shown}{more}")
        self.issues = list(issues)


class LabelMap:
    """Class names <-> ids. From a list of names, or a file with one name per line (Kinetics /
    mmaction2 ``label_map.txt``, the line number is the id)."""

    def __init__(self, names: Sequence[str]):
        self.names = [str(n) for n in names]
        dupes = sorted({n for n in self.names if self.names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate class names in the label map: {dupes}")
        self._ids: Dict[str, int] = {n: i for i, n in enumerate(self.names)}

    @classmethod
    def from_file(cls, path: PathLike) -> LabelMap:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8-sig").splitlines()]
        return cls([ln for ln in lines if ln and not ln.startswith("#")])

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._ids

    def lookup(self, label: str) -> int:
        """A class name, or an integer id within range; KeyError otherwise."""
        label = label.strip()
        if label in self._ids:
            return self._ids[label]
        if label.lstrip("-").isdigit():
            idx = int(label)
            if 0 <= idx < len(self.names):
                return idx
            raise KeyError(f"label id {idx} outside the label map (0..{len(self.names) - 1})")
        raise KeyError(f"label {label!r} is not in the label map ({len(self.names)} classes)")


Result = Tuple[List[VideoRecord], List[AnnotationIssue]]


def _resolve(root: Path, path: str) -> str:
    p = Path(path.strip())
    return str(p if p.is_absolute() else root / p)


def _make_record(source: str, line: int, path: str, label: str, labels: LabelMap, root: Path,
                 start: Optional[str], end: Optional[str], issues: List[AnnotationIssue]) -> Optional[VideoRecord]:
    try:
        label_id = labels.lookup(label)
    except KeyError as err:
        issues.append(AnnotationIssue(source, line, err.args[0]))
        return None
    full = _resolve(root, path)
    if not os.path.isfile(full):
        issues.append(AnnotationIssue(source, line, f"video file not found: {full}"))
        return None
    try:
        s = int(start) if start not in (None, "") else None
        e = int(end) if end not in (None, "") else None
    except ValueError:
        issues.append(AnnotationIssue(source, line, f"start/end must be frame indices, got {start!r}, {end!r}"))
        return None
    if s is not None and e is not None and not 0 <= s < e:
        issues.append(AnnotationIssue(source, line, f"empty or negative segment [{s}, {e})"))
        return None
    return VideoRecord(full, label_id, s, e)


def read_csv(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None) -> Result:
    """CSV with a header naming at least ``path`` and ``label`` (optional ``start``, ``end``)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records, issues = [], []
    seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark is not a column name
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError([AnnotationIssue(str(path), 1, f"CSV header lacks column(s) {sorted(missing)}; "
                                                   f"expected path,label[,start,end], got {reader.fieldnames}")])
        for row in reader:
            line = reader.line_num
            if not (row.get("path") or "").strip() or row.get("label") is None:
                issues.append(AnnotationIssue(str(path), line, f"incomplete row {row}"))
                continue
            rec = _make_record(str(path), line, row["path"], row["label"], labels, root, row.get("start"),
                               row.get("end"), issues)
            if rec is not None and _first(rec, str(path), line, seen, issues):
                records.append(rec)
    return records, issues


def _first(rec: VideoRecord, source: str, line: int, seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int],
           issues: List[AnnotationIssue]) -> bool:
    """False (and an issue naming the earlier line) for a repeat of an annotation already read:
    kept once, so a duplicated line does not weigh a video twice."""
    key = (rec.path, rec.label, rec.start, rec.end)
    if key in seen:
        issues.append(AnnotationIssue(source, line, f"duplicate of line {seen[key]} (kept once)"))
        return False
    seen[key] = line
    return True


def read_list(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None) -> Result:
    """mmaction2 video list: ``relative/path.mp4 label`` per line (the label is the last field)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records, issues = [], []
    seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2:
            issues.append(AnnotationIssue(str(path), line_no, f"expected 'path label', got {text!r}"))
            continue
        rec = _make_record(str(path), line_no, parts[0], parts[1], labels, root, None, None, issues)
        if rec is not None and _first(rec, str(path), line_no, seen, issues):
            records.append(rec)
    return records, issues


def folder_classes(root: PathLike) -> List[str]:
    """Sorted names of the class folders under `root`."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def read_folder(root: PathLike, labels: Optional[LabelMap] = None,
                extensions: Iterable[str] = VIDEO_EXTENSIONS) -> Tuple[List[VideoRecord], List[AnnotationIssue], LabelMap]:
    """``root/<class>/<video>``; the label map defaults to the sorted folder names."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    labels = labels or LabelMap(folder_classes(root))
    exts = tuple(e.lower() for e in extensions)
    records, issues = [], []
    for name in folder_classes(root):
        if name not in labels:
            issues.append(AnnotationIssue(str(root / name), 0, f"class folder {name!r} is not in the label map"))
            continue
        for video in sorted((root / name).rglob("*")):
            if video.is_file() and video.suffix.lower() in exts:
                records.append(VideoRecord(str(video), labels.lookup(name)))
    return records, issues, labels


def read_annotations(source: PathLike, labels: Optional[LabelMap] = None, root: Optional[PathLike] = None,
                     on_error: str = "raise") -> Tuple[List[VideoRecord], List[AnnotationIssue], LabelMap]:
    """Any of the three formats, chosen by `source`: a folder (class-per-folder), a ``.csv``, or
    another text file (mmaction2 list). CSV and list formats need `labels`.

    Args:
        on_error: "raise" (AnnotationError listing every problem) or "skip" (drop those lines and
            return the problems).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = Path(source)
    if source.is_dir():
        records, issues, labels = read_folder(source, labels)
    elif not source.is_file():
        raise FileNotFoundError(f"annotation file not found: {source}")
    else:
        if labels is None:
            raise ValueError(f"{source}: a label map is needed for CSV and list annotations")
        reader = read_csv if source.suffix.lower() == ".csv" else read_list
        records, issues = reader(source, labels, root)
    if issues and on_error == "raise":
        raise AnnotationError(issues)
    return records, issues, labels
