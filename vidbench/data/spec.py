"""A dataset directory: its label map, splits, class groups and default clip sampling.

A directory made by `vidbench make-dataset` carries a ``dataset.json`` manifest; any dataset can
have one (write it by hand: splits may point at CSV files, mmaction2 lists or class folders).
Without a manifest the directory is read by convention: a label map in ``classes.txt`` or
``label_map.txt`` (else the class folders of the train split), and each split as
``<split>.csv``, ``<split>.txt`` or a class-per-folder ``<split>/`` directory.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from .annotations import AnnotationIssue, LabelMap, VideoRecord, folder_classes, read_annotations
from .videoio import PathLike

__all__ = ["DataSpec", "SPLITS"]

SPLITS = ("train", "val", "test")
DEFAULT_CLIP = {"num_frames": 8, "stride": 2, "mode": "dense", "size": 32}


@dataclass
class DataSpec:
    root: Path
    labels: LabelMap
    splits: Dict[str, Path]  # split name -> annotation source
    groups: Dict[str, str] = field(default_factory=dict)  # class name -> group ("static", "temporal")
    no_flip: List[str] = field(default_factory=list)  # classes a horizontal flip would change
    clip: Dict[str, object] = field(default_factory=lambda: dict(DEFAULT_CLIP))

    @classmethod
    def load(cls, path: PathLike) -> DataSpec:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {root} (make one with `vidbench make-dataset`)")
        manifest = root / "dataset.json"
        if manifest.exists():
            meta = json.loads(manifest.read_text())
            labels = (LabelMap.from_file(root / meta["label_map"]) if meta.get("label_map")
                      else LabelMap(meta["classes"]))
            splits = {k: root / v for k, v in meta["splits"].items()}
            return cls(root, labels, splits, dict(meta.get("groups", {})), list(meta.get("no_flip", [])),
                       {**DEFAULT_CLIP, **meta.get("clip", {})})
        splits = {}
        for split in SPLITS:
            for candidate in (root / f"{split}.csv", root / f"{split}.txt", root / split):
                if candidate.exists():
                    splits[split] = candidate
                    break
        if not splits:
            raise FileNotFoundError(f"{root}: no dataset.json and no train/val/test annotations "
                                    "(<split>.csv, <split>.txt or <split>/ class folders)")
        label_file = next((p for p in (root / "classes.txt", root / "label_map.txt") if p.exists()), None)
        if label_file is not None:
            labels = LabelMap.from_file(label_file)
        elif splits.get("train", Path()).is_dir():
            labels = LabelMap(folder_classes(splits["train"]))
        else:
            raise FileNotFoundError(f"{root}: no label map (classes.txt or label_map.txt, one class per line)")
        return cls(root, labels, splits)

    @property
    def classes(self) -> List[str]:
        return self.labels.names

    def records(self, split: str, on_error: str = "skip") -> Tuple[List[VideoRecord], List[AnnotationIssue]]:
        if split not in self.splits:
            raise KeyError(f"{self.root}: no split {split!r} (has {sorted(self.splits)})")
        records, issues, _ = read_annotations(self.splits[split], self.labels, self.root, on_error)
        return records, issues

    def default_eval_split(self) -> str:
        """"test" where the dataset has one, else "val" (Kinetics ships train and val only)."""
        for split in ("test", "val"):
            if split in self.splits:
                return split
        raise KeyError(f"{self.root}: no test or val split to evaluate (has {sorted(self.splits)})")

    def label_groups(self) -> List[Optional[str]]:
        """The group of each label id (None where the dataset defines none)."""
        return [self.groups.get(name) for name in self.labels.names]

    def no_flip_labels(self) -> Set[int]:
        unknown = [n for n in self.no_flip if n not in self.labels]
        if unknown:
            raise ValueError(f"{self.root}: no_flip names classes outside the label map: {unknown}")
        return {self.labels.lookup(n) for n in self.no_flip}
