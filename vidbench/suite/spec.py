"""Suites are data: a small TOML file per suite (vidbench/suites/*.toml, or any path) read into
typed sections. Unknown keys are errors that name the file and the section."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


@dataclass
class DatasetSpec:
    path: str = "data/synthetic"  # relative paths resolve against the working directory
    generate: bool = True  # generate with `make-dataset` options below when absent
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchSpec:
    models: List[str] = field(default_factory=list)
    frames: List[Optional[int]] = field(default_factory=lambda: [None])
    batch_sizes: List[int] = field(default_factory=lambda: [1])
    precisions: List[str] = field(default_factory=lambda: ["fp32"])
    modes: List[str] = field(default_factory=lambda: ["infer", "train"])
    scaling_frames: List[int] = field(default_factory=list)  # extra frame counts, inference only
    warmup: int = 3
    iters: int = 10
    count_only: bool = False  # FLOPs and params only (any machine), no timing or memory
    requires: Optional[str] = None  # "cuda": the stage is skipped (and says so) on a machine without one
    retry_oom: int = 1
    timeout_s: Optional[float] = None


@dataclass
class TrainSpec:
    models: List[str] = field(default_factory=list)
    epochs: int = 5
    batch_size: int = 16
    eval_views: str = "2x1"
    options: Dict[str, Any] = field(default_factory=dict)  # further vidbench.train.TrainConfig fields


@dataclass
class SSLSpec:
    methods: List[str] = field(default_factory=list)
    backbone: str = "vit_tiny"
    backbone_overrides: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 128
    frames_per_clip: int = 8  # frames taken from each training video
    knn_k: int = 200  # neighbours of the kNN evaluation (keep it below the frames per class on small data)
    baseline: bool = True  # also evaluate the random-init backbone
    options: Dict[str, Any] = field(default_factory=dict)  # further vidbench.ssl.train.TrainConfig fields (lr, ...)
    method_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per method, e.g. {wmse = {w_size = 64}}


@dataclass
class InitSpec:
    model: str = ""
    methods: List[str] = field(default_factory=lambda: ["best"])  # "best" / "worst" by linear probe, or names
    epochs: Optional[int] = None  # default: the train section's


@dataclass
class PublishedSpec:
    """Published checkpoints, each evaluated with its own preprocessing and benchmarked at its own
    input size (`vidbench run --suite published --weights-dir DIR --data TREE`)."""

    weights_dir: str = ""  # every checkpoint file / Hugging Face directory in it is one stage
    data: str = ""  # the dataset tree to evaluate on (default: the [dataset] section's path)
    split: Optional[str] = None  # default: test, else val
    views: Optional[str] = None  # default: each checkpoint's published views
    batch_size: int = 4
    num_workers: int = 0
    bench: bool = True  # also measure inference at batch 1 (bench.csv rows carry the weights' path)
    warmup: int = 1
    iters: int = 3
    models: Dict[str, str] = field(default_factory=dict)  # file name -> registry name, for formats without a config


@dataclass
class Suite:
    name: str
    description: str = ""
    device: str = "cpu"
    threads: Optional[int] = None
    dataset: Optional[DatasetSpec] = None
    flops: Optional[BenchSpec] = None
    bench: Optional[BenchSpec] = None
    train: Optional[TrainSpec] = None
    ssl: Optional[SSLSpec] = None
    init: Optional[InitSpec] = None
    published: Optional[PublishedSpec] = None
    report: bool = True
    source: str = ""


_SECTIONS = {"dataset": DatasetSpec, "flops": BenchSpec, "bench": BenchSpec, "train": TrainSpec, "ssl": SSLSpec, "init": InitSpec,
             "published": PublishedSpec}


def _build(cls: type, values: Dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return cls(**values)


def available_suites() -> List[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: Union[str, Path]) -> Suite:
    """A built-in suite by name (quick, paper, ...) or a suite file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise FileNotFoundError(f"no built-in suite {str(name_or_path)!r}; built-in: {', '.join(available_suites())}"
                                    " (or pass a path to a .toml suite file)")
    if not path.exists():
        raise FileNotFoundError(f"suite file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    sections = {k: _build(cls, raw.pop(k), f"{path} [{k}]") for k, cls in _SECTIONS.items() if k in raw}
    suite = _build(Suite, {"name": path.stem, **raw, **sections}, str(path))
    suite.source = str(path)
    if suite.device == "auto":
        import torch

        suite.device = "cuda" if torch.cuda.is_available() else "cpu"
    return suite
