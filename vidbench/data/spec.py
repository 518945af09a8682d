"""A dataset directory: its label map, splits, class groups and default clip sampling.

A directory made by `vidbench make-dataset` carries a ``dataset.json`` manifest; any dataset can
have one (write it by hand: splits may point at CSV files, mmaction2 lists or class folders).
Without a manifest the directory is read by convention: a label map in ``classes.txt`` or
``label_map.txt`` (else the class folders of the train split), and each split as
``<split>.csv``, ``<split>.txt`` or a class-per-folder ``<split>/`` directory.

Real datasets' own files are found the same way: Kinetics (``train.csv``, ``validate.csv``,
``test.csv`` with ``label,youtube_id,time_start,time_end,split``; classes: the sorted labels of
the train CSV) and Something-Something v2 (``labels.json``, ``train.json``, ``validation.json``,
``test.json``, videos in ``20bn-something-something-v2/``), at the top of the directory or in its
``annotations/`` or ``labels/`` folder. A manifest can name them too (``"label_map":
"labels.json"``; ``"video_root"``: the folder video paths are relative to, default the directory).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from ..errors import ConfigError, UnknownNameError
from .annotations import (
    AnnotationIssue,
    LabelMap,
    VideoRecord,
    folder_classes,
    is_kinetics_csv,
    kinetics_classes,
    read_annotations,
)
from .videoio import PathLike

__all__ = ["DataSpec", "SPLITS"]

SPLITS = ("train", "val", "test")
DEFAULT_CLIP = {"num_frames": 8, "stride": 2, "mode": "dense", "size": 32}
# real datasets' annotation files of each split, tried after <split>.csv and <split>.txt, before <split>/
_REAL_FILES = {"train": ("train.csv", "train.json"), "val": ("validate.csv", "val.csv", "validation.json"),
               "test": ("test.csv", "test.json")}


@dataclass
class DataSpec:
    root: Path
    labels: LabelMap
    splits: Dict[str, Path]  # split name -> annotation source
    groups: Dict[str, str] = field(default_factory=dict)  # class name -> group ("static", "temporal")
    no_flip: List[str] = field(default_factory=list)  # classes a horizontal flip would change
    clip: Dict[str, object] = field(default_factory=lambda: dict(DEFAULT_CLIP))
    video_root: Optional[Path] = None  # what relative video paths start from (default: root)

    @classmethod
    def load(cls, path: PathLike) -> DataSpec:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {root} (make one with `vidbench make-dataset`)")
        manifest = root / "dataset.json"
        if manifest.exists():
            try:
                meta = json.loads(manifest.read_text())
            except json.JSONDecodeError as err:
                raise ConfigError(f"{manifest}:{err.lineno}: malformed JSON: {err.msg}") from None
            if not isinstance(meta, dict) or not isinstance(meta.get("splits"), dict):
                raise ConfigError(f"{manifest}: needs a \"splits\" object (split name -> annotation file)")
            splits = {k: root / v for k, v in meta["splits"].items()}
            if meta.get("label_map"):
                labels = LabelMap.from_file(root / meta["label_map"])
            elif "classes" in meta:
                labels = LabelMap(meta["classes"])
            else:
                labels = cls._implied_labels(root, splits)
            video_root = root / meta["video_root"] if meta.get("video_root") else None
            return cls(root, labels, splits, dict(meta.get("groups", {})), list(meta.get("no_flip", [])),
                       {**DEFAULT_CLIP, **meta.get("clip", {})}, video_root)
        splits = {}
        folders = [root, root / "annotations", root / "labels"]
        for split in SPLITS:
            names = (f"{split}.csv", f"{split}.txt", *_REAL_FILES[split], split)  # files before folders
            found = next((d / n for n in names for d in folders if (d / n).exists()), None)
            if found is not None:
                splits[split] = found
        if not splits:
            raise FileNotFoundError(f"{root}: no dataset.json and no train/val/test annotations "
                                    "(<split>.csv, <split>.txt or <split>/ class folders, Kinetics CSVs or "
                                    "Something-Something v2 JSON)")
        label_file = next((d / n for d in folders for n in ("classes.txt", "label_map.txt", "labels.json")
                           if (d / n).exists()), None)
        labels = LabelMap.from_file(label_file) if label_file is not None else cls._implied_labels(root, splits)
        return cls(root, labels, splits)

    @staticmethod
    def _implied_labels(root: Path, splits: Dict[str, Path]) -> LabelMap:
        """Without a label file: the class folders of the train split, or the sorted labels of a
        Kinetics train CSV (Kinetics's own numbering)."""
        train = splits.get("train", Path())
        if train.is_dir():
            return LabelMap(folder_classes(train))
        if train.suffix.lower() == ".csv" and train.is_file() and is_kinetics_csv(train):
            return LabelMap(kinetics_classes(train))
        raise FileNotFoundError(f"{root}: no label map (classes.txt or label_map.txt, one class per line; "
                                "labels.json; or a Kinetics train.csv)")

    @property
    def classes(self) -> List[str]:
        return self.labels.names

    def records(self, split: str, on_error: str = "skip") -> Tuple[List[VideoRecord], List[AnnotationIssue]]:
        if split not in self.splits:
            raise UnknownNameError(f"{self.root}: no split {split!r} (has {sorted(self.splits)})")
        records, issues, _ = read_annotations(self.splits[split], self.labels, self.video_root or self.root, on_error)
        return records, issues

    def default_eval_split(self) -> str:
        """"test" where the dataset has one, else "val" (Kinetics ships train and val only)."""
        for split in ("test", "val"):
            if split in self.splits:
                return split
        raise UnknownNameError(f"{self.root}: no test or val split to evaluate (has {sorted(self.splits)})")

    def label_groups(self) -> List[Optional[str]]:
        """The group of each label id (None where the dataset defines none)."""
        return [self.groups.get(name) for name in self.labels.names]

    def no_flip_labels(self) -> Set[int]:
        unknown = [n for n in self.no_flip if n not in self.labels]
        if unknown:
            raise ConfigError(f"{self.root}: no_flip names classes outside the label map: {unknown}")
        return {self.labels.lookup(n) for n in self.no_flip}
