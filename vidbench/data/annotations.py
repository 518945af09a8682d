"""Annotation formats users already have, read into `VideoRecord`s with a label map.

- CSV with a header: ``path,label[,start,end]`` (start/end: frame indices, end exclusive);
- mmaction2 video lists: one ``path label`` per line (space separated, ``#`` comments);
- mmaction2 rawframes lists: one ``frame_dir total_frames label`` per line, recognised by their
  lines (`is_rawframe_list`), read into `FrameDirRecord`s (the folders themselves are read by
  `vidbench.data.rawframes`, which imports this module);
- a class-per-folder tree (Kinetics / UCF101 layout): ``root/<class>/<video>``;
- Kinetics CSV files as distributed (``label,youtube_id,time_start,time_end,split``), the video of
  a row being ``<split folder>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`` (split folder:
  the ``split`` column or the CSV's name, ``val``/``validate``/... accepted for each other; a
  flat ``<split folder>/<file>`` also works);
- Something-Something v2 JSON files (``train.json``: a list of {"id", "label", "template",
  "placeholders"}), the video of an entry being ``<videos>/<id>.webm`` (``videos``: the
  ``20bn-something-something-v2`` folder where there is one) and its class the template without
  brackets (a key of ``labels.json``); entries without one (the released ``test.json``) take
  their label from ``test-answers.csv`` (``id;label``) beside the JSON file.

Labels are class names from the label map or integer ids. Relative paths resolve against `root`.
A split without labels (a test CSV with no ``label`` column or empty labels, Kinetics' test CSV,
SSv2's test JSON without answers, a list of paths) is read with ``unlabelled=True`` for
predictions: its records carry `NO_LABEL`; by default a missing label is an issue.
Problems (a label outside the map, a missing file, a malformed line) are collected as
`AnnotationIssue`s naming the file and line; `on_error="raise"` turns them into one error.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import ConfigError, UserError

__all__ = ["AnnotationError", "AnnotationIssue", "LabelMap", "VideoRecord", "read_annotations", "read_csv",
           "read_folder", "read_kinetics_csv", "read_list", "read_ssv2_json", "kinetics_classes", "ssv2_class_name",
           "NO_LABEL", "SSV2_VIDEO_DIR", "VIDEO_EXTENSIONS", "FrameDirRecord", "is_frame_dir", "is_rawframe_list",
           "read_rawframes", "write_rawframe_list"]

PathLike = Union[str, os.PathLike]
NO_LABEL = -1  # the label of a record read with unlabelled=True from a line that has none
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")  # and "label" (absent from unlabelled test CSVs), "split"
SSV2_VIDEO_DIR = "20bn-something-something-v2"
_SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "validate", "valid", "validation"),
                  "test": ("test", "testing")}


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


class AnnotationError(UserError, ValueError):
    """Annotations that cannot be used (every problem listed): a user error, one line at the CLI."""

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
            raise ConfigError(f"duplicate class names in the label map: {dupes}")
        self._ids: Dict[str, int] = {n: i for i, n in enumerate(self.names)}

    @classmethod
    def from_file(cls, path: PathLike) -> LabelMap:
        """One name per line, or a ``.json`` object {name: index} (Something-Something v2's
        ``labels.json``, indices as strings or numbers) or list of names."""
        if Path(path).suffix.lower() == ".json":
            return cls._from_json(Path(path))
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8-sig").splitlines()]
        return cls([ln for ln in lines if ln and not ln.startswith("#")])

    @classmethod
    def _from_json(cls, path: Path) -> LabelMap:
        data = _load_json(path)
        if isinstance(data, list):
            return cls([str(n) for n in data])
        if not isinstance(data, dict):
            raise AnnotationError([AnnotationIssue(str(path), 0, "a label map must be a JSON object {name: index} "
                                                   f"or a list of names, got {type(data).__name__}")])
        try:
            ids = {name: int(index) for name, index in data.items()}
        except (TypeError, ValueError):
            raise AnnotationError([AnnotationIssue(str(path), 0, "label indices must be integers")]) from None
        if sorted(ids.values()) != list(range(len(ids))):
            raise AnnotationError([AnnotationIssue(str(path), 0, f"label indices must be 0..{len(ids) - 1}, each once")])
        return cls(sorted(ids, key=ids.__getitem__))

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


def _make_record(source: str, line: int, path: str, label: Optional[str], labels: LabelMap, root: Path,
                 start: Optional[str], end: Optional[str], issues: List[AnnotationIssue],
                 unlabelled: bool = False) -> Optional[VideoRecord]:
    try:
        label_id = NO_LABEL if unlabelled and not (label or "").strip() else labels.lookup(label or "")
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


def read_csv(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None, unlabelled: bool = False) -> Result:
    """CSV with a header naming at least ``path`` and ``label`` (optional ``start``, ``end``);
    `unlabelled`: ``label`` may be absent or empty (records with `NO_LABEL`)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records, issues = [], []
    seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark is not a column name
        reader = csv.DictReader(f)
        if set(KINETICS_COLUMNS) <= set(reader.fieldnames or []):
            return read_kinetics_csv(path, labels, root, unlabelled)
        missing = {"path", *(() if unlabelled else ("label",))} - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError([AnnotationIssue(str(path), 1, f"CSV header lacks column(s) {sorted(missing)}; "
                                                   f"expected path,label[,start,end], got {reader.fieldnames}")])
        for row in reader:
            line = reader.line_num
            if not (row.get("path") or "").strip() or (row.get("label") is None and not unlabelled):
                issues.append(AnnotationIssue(str(path), line, f"incomplete row {row}"))
                continue
            rec = _make_record(str(path), line, row["path"], row.get("label"), labels, root, row.get("start"),
                               row.get("end"), issues, unlabelled)
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


def read_list(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None, unlabelled: bool = False) -> Result:
    """mmaction2 video list: ``relative/path.mp4 label`` per line (the label is the last field);
    `unlabelled`: a line may be a path alone (mmaction2's inference lists; record with `NO_LABEL`)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records, issues = [], []
    seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(maxsplit=1)
        if unlabelled and (len(parts) == 1 or text.lower().endswith(VIDEO_EXTENSIONS)):
            parts = [text, ""]
        if len(parts) != 2:
            issues.append(AnnotationIssue(str(path), line_no, f"expected 'path label', got {text!r}"))
            continue
        rec = _make_record(str(path), line_no, parts[0], parts[1], labels, root, None, None, issues, unlabelled)
        if rec is not None and _first(rec, str(path), line_no, seen, issues):
            records.append(rec)
    return records, issues


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise AnnotationError([AnnotationIssue(str(path), err.lineno, f"malformed JSON: {err.msg} "
                                               f"(column {err.colno})")]) from None


def is_kinetics_csv(path: PathLike) -> bool:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return set(KINETICS_COLUMNS) <= set(next(csv.reader(f), []))


def kinetics_classes(path: PathLike) -> List[str]:
    """The sorted class names of a Kinetics CSV (Kinetics numbers its classes in this order)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return sorted({row["label"].strip() for row in csv.DictReader(f) if (row.get("label") or "").strip()})


def _split_folder(base: Path, split: str, cache: Dict[str, Optional[Path]]) -> Optional[Path]:
    if split not in cache:
        names = next((v for v in _SPLIT_FOLDERS.values() if split in v), (split,))
        cache[split] = next((base / n for n in (split, *names) if (base / n).is_dir()), None)
    return cache[split]


def read_kinetics_csv(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None,
                      unlabelled: bool = False) -> Result:
    """A Kinetics CSV (``label,youtube_id,time_start,time_end,split``); videos under `root`
    (default: the CSV's folder) in ``<split folder>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``
    (or any video extension, or without the class folder). Records cover the whole file: the
    times are the clip's place in the YouTube video, not in the file."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    records, issues = [], []
    seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int] = {}
    folders: Dict[str, Optional[Path]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = set(KINETICS_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError([AnnotationIssue(str(path), 1, f"Kinetics CSV header lacks column(s) {sorted(missing)}; "
                                                   "expected label,youtube_id,time_start,time_end,split")])
        for row in reader:
            line = reader.line_num
            label, vid = (row.get("label") or "").strip(), (row.get("youtube_id") or "").strip()
            if not vid:
                issues.append(AnnotationIssue(str(path), line, f"incomplete row {row}"))
                continue
            if not label and not unlabelled:
                issues.append(AnnotationIssue(str(path), line, f"no label for {vid} (an unlabelled test CSV?)"))
                continue
            try:
                label_id = labels.lookup(label) if label else NO_LABEL
                start, end = int(row["time_start"]), int(row["time_end"])
            except KeyError as err:
                issues.append(AnnotationIssue(str(path), line, err.args[0]))
                continue
            except (TypeError, ValueError):
                issues.append(AnnotationIssue(str(path), line, "time_start/time_end must be whole seconds, got "
                                              f"{row['time_start']!r}, {row['time_end']!r}"))
                continue
            if not 0 <= start < end:  # the file name holds them: a wrong row reads as a missing file
                issues.append(AnnotationIssue(str(path), line, f"time_start {start} / time_end {end}: an empty or "
                                              "negative clip (need 0 <= time_start < time_end)"))
                continue
            split = (row.get("split") or "").strip() or path.stem
            folder = _split_folder(base, split, folders)
            stem = f"{vid}_{start:06d}_{end:06d}"
            if folder is None:
                issues.append(AnnotationIssue(str(path), line, f"video file not found: no folder for split {split!r} "
                                              f"under {base}"))
                continue
            where = [folder / label, folder / label.replace(" ", "_"), folder] if label else [folder]
            found = next((str(d / (stem + ext)) for d in where for ext in VIDEO_EXTENSIONS
                          if os.path.isfile(d / (stem + ext))), None)
            if found is None:
                issues.append(AnnotationIssue(str(path), line, f"video file not found: {folder / label / stem}.mp4"))
                continue
            rec = VideoRecord(found, label_id)
            if _first(rec, str(path), line, seen, issues):
                records.append(rec)
    return records, issues


def ssv2_class_name(template: str) -> str:
    """Something-Something v2's class name of a template: the template without its brackets."""
    return template.replace("[", "").replace("]", "")


def read_ssv2_json(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None,
                   unlabelled: bool = False) -> Result:
    """A Something-Something v2 JSON list; videos ``<id>.webm`` in `root`'s (default: the JSON's
    folder's) ``20bn-something-something-v2/`` folder, or in `root` itself without one."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    videos = base / SSV2_VIDEO_DIR if (base / SSV2_VIDEO_DIR).is_dir() else base
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise AnnotationError([AnnotationIssue(str(path), 0, "expected a JSON list of {\"id\", \"label\", "
                                               f"\"template\", \"placeholders\"}} entries, got {type(entries).__name__}")])
    answers: Optional[Dict[str, str]] = None
    records, issues = [], []
    seen: Dict[Tuple[str, int, Optional[int], Optional[int]], int] = {}
    for number, entry in enumerate(entries, start=1):
        vid = str(entry.get("id", "")).strip() if isinstance(entry, dict) else ""
        if not vid:
            issues.append(AnnotationIssue(str(path), 0, f"entry {number}: no video id in {entry!r}"))
            continue
        where = f"entry {number} (id {vid})"
        if entry.get("template"):
            name: Optional[str] = ssv2_class_name(str(entry["template"]))
        elif entry.get("label"):
            name = str(entry["label"])
        else:
            if answers is None:
                answers = _ssv2_answers(path.parent / "test-answers.csv")
            name = answers.get(vid)
        if name is None and not unlabelled:
            issues.append(AnnotationIssue(str(path), 0, f"{where}: no label (no template or label, and not in "
                                          f"{path.parent / 'test-answers.csv'})"))
            continue
        if name is not None and name not in labels:
            issues.append(AnnotationIssue(str(path), 0, f"{where}: label {name!r} is not in the label map "
                                          f"({len(labels)} classes)"))
            continue
        found = next((videos / (vid + ext) for ext in (".webm", *VIDEO_EXTENSIONS) if (videos / (vid + ext)).is_file()),
                     None)
        if found is None:
            issues.append(AnnotationIssue(str(path), 0, f"{where}: video file not found: {videos / vid}.webm"))
            continue
        rec = VideoRecord(str(found), labels.lookup(name) if name is not None else NO_LABEL)
        if _first(rec, str(path), number, seen, issues):
            records.append(rec)
    return records, issues


def _ssv2_answers(path: Path) -> Dict[str, str]:
    """``id;label`` lines (Something-Something v2's test-answers.csv); empty if there is none."""
    if not path.is_file():
        return {}
    pairs = (line.split(";", 1) for line in path.read_text(encoding="utf-8-sig").splitlines() if ";" in line)
    return {vid.strip(): label.strip() for vid, label in pairs}


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


# -- mmaction2 rawframes lists: one frame folder per line (vidbench.data.rawframes reads the folders) --
@dataclass(frozen=True)
class FrameDirRecord(VideoRecord):
    """A record whose `path` is a frame folder holding `num_frames` JPEGs."""

    num_frames: int = 0


def is_frame_dir(record: VideoRecord) -> bool:
    return isinstance(record, FrameDirRecord)


def _data_lines(path: Path) -> List[Tuple[int, str]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [(n, ln.strip()) for n, ln in enumerate(lines, start=1) if ln.strip() and not ln.strip().startswith("#")]


def _is_rawframe_line(text: str) -> bool:
    """``frame_dir total_frames label``: three whitespace-separated fields, as mmaction2's
    `RawframeDataset` splits them (``line.split()``), the last two integers."""
    parts = text.split()
    return (len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip("-").isdigit()
            and not parts[0].lower().endswith(VIDEO_EXTENSIONS))


def _looks_rawframe(text: str) -> bool:
    """Ends in two integers after at least one other field (well formed or not)."""
    parts = text.split()
    return len(parts) >= 3 and parts[-2].isdigit() and parts[-1].lstrip("-").isdigit()


def is_rawframe_list(path: PathLike, probe: int = 20) -> bool:
    """True for an mmaction2 rawframes list: among its first `probe` lines some read ``dir
    frames label`` (two integer fields after a path) and none names a video file. A malformed
    line among them does not make the file a video list: `read_rawframes` names it by number."""
    path = Path(path)
    if path.suffix.lower() == ".csv" or not path.is_file():
        return False
    lines = [text for _, text in _data_lines(path)[:probe]]
    names_video = any(part.lower().endswith(VIDEO_EXTENSIONS) for text in lines for part in text.split())
    return any(_looks_rawframe(text) for text in lines) and not names_video


def _line_problem(text: str) -> str:
    parts = text.split()
    hint = ""
    if len(parts) > 3 and _looks_rawframe(text):
        hint = ("; whitespace in the folder name, or mmaction2's offset / multi-label columns? mmaction2 splits a "
                "line on whitespace: rename the folder (vidbench extract-frames writes '_' for whitespace)")
    elif len(parts) == 2 and parts[1].isdigit():
        hint = "; no label"
    return f"expected 'frame_dir total_frames label' (3 fields separated by whitespace), got {text!r}{hint}"


def read_rawframes(path: PathLike, labels: LabelMap, root: Optional[PathLike] = None
                   ) -> Tuple[List[VideoRecord], List[AnnotationIssue]]:
    """mmaction2 rawframes list: ``frame_dir total_frames label`` per line, split on whitespace
    as mmaction2 does (a line that does not split into those three fields is an issue naming its
    number). Folders are not opened here (a missing one becomes a bad item when loaded, named
    and counted)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records: List[VideoRecord] = []
    issues: List[AnnotationIssue] = []
    seen: Dict[str, int] = {}
    for line_no, text in _data_lines(path):
        if not _is_rawframe_line(text):
            issues.append(AnnotationIssue(str(path), line_no, _line_problem(text)))
            continue
        folder, total, label = text.split()
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
    """Write ``frame_dir total_frames label`` lines (label ids, as mmaction2 does). A folder name
    with whitespace is refused: mmaction2 splits lines on it."""
    path = Path(path)
    spaced = [folder for folder, _, _ in rows if len(folder.split()) != 1]
    if spaced:
        raise ValueError(f"{path}: frame folder {spaced[0]!r} has whitespace, which mmaction2 splits lines on")
    path.write_text("".join(f"{folder} {total} {label}\n" for folder, total, label in rows))
    return path


def read_annotations(source: PathLike, labels: Optional[LabelMap] = None, root: Optional[PathLike] = None,
                     on_error: str = "raise", unlabelled: bool = False
                     ) -> Tuple[List[VideoRecord], List[AnnotationIssue], LabelMap]:
    """Any of the formats, chosen by `source`: a folder (class-per-folder), a ``.csv`` (path,label
    or Kinetics, by its header), a ``.json`` (Something-Something v2) or another text file
    (mmaction2 list). All but folders need `labels`.

    Args:
        on_error: "raise" (AnnotationError listing every problem) or "skip" (drop those lines and
            return the problems).
        unlabelled: keep lines without a label as records labelled `NO_LABEL` (for predictions
            on a test split without labels) instead of issues; class folders and rawframes lists
            always have labels.
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
        suffix = source.suffix.lower()
        reader = read_csv if suffix == ".csv" else read_ssv2_json if suffix == ".json" else read_list
        reader = read_rawframes if reader is read_list and is_rawframe_list(source) else reader
        if unlabelled and reader is not read_rawframes:
            records, issues = reader(source, labels, root, unlabelled=True)
        else:
            records, issues = reader(source, labels, root)
    if issues and on_error == "raise":
        raise AnnotationError(issues)
    return records, issues, labels
