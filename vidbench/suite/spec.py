"""Suites are data: a small TOML file per suite (vidbench/suites/*.toml, or any path) read into
typed sections. The [bench] / [flops], [e2e], [train] and [ssl] sections are the jobs' own dataclasses
(`SweepConfig`, `E2EConfig`, `TrainConfig`, `PretrainConfig`: the same keys, defaults and help as the
command's flags) extended by what only a suite has; the suite sets the rest (device, threads,
paths). Unknown keys are errors that name the file and the section; deprecated spellings are
accepted with a warning."""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..bench.e2e import E2EConfig
from ..bench.grid import SweepConfig
from ..options import Alias, accepts_aliases, deprecation, from_mapping, option
from ..ssl.train import PretrainConfig
from ..train.config import TrainConfig

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


@accepts_aliases
@dataclass
class BenchSpec(SweepConfig):
    """[bench] and [flops]: a `SweepConfig` (vidbench bench's options) plus the suite's extras.
    The suite sets device and threads."""

    scaling_frames: List[int] = option(default_factory=list, help="extra frame counts, inference only (throughput "
                                                                  "and memory against frames)")
    count_only: bool = option(False, help="FLOPs and params only (any machine, meta device), no timing or memory")
    requires: Optional[str] = option(None, help='"cuda": the stage is skipped (and says so) on a machine without one')


@accepts_aliases
@dataclass
class TrainSpec(TrainConfig):
    """[train]: `TrainConfig` fields (vidbench train's options) for every model in `models`, each
    trained into <out>/train/<model> and evaluated on the test split with `eval_views` into the
    suite's accuracy.csv. The suite sets model, data, out, init, device, resume and progress."""

    models: List[str] = option(default_factory=list, help="registry names, one train stage each")

    def __post_init__(self) -> None:
        self.check_options()


@accepts_aliases
@dataclass
class SSLSpec(PretrainConfig):
    """[ssl]: `PretrainConfig` fields (vidbench pretrain's training options) plus the pipeline:
    methods, backbone, frames per video, kNN, the random-init baseline. The suite sets device
    and progress."""

    methods: List[str] = option(default_factory=list, help="self-supervised methods, one ssl stage each")
    backbone: str = option("vit_tiny", help="image ViT from the registry")
    backbone_overrides: Dict[str, Any] = option(default_factory=dict, help="create_model overrides of the backbone")
    frames: int = option(8, aliases=[Alias("frames_per_clip")], help="frames taken from each training video")
    knn_k: int = option(200, help="neighbours of the kNN evaluation (keep it below the frames per class on small "
                                  "data)")
    baseline: bool = option(True, help="also evaluate the random-init backbone")
    method_options: Dict[str, Dict[str, Any]] = option(default_factory=dict, help="per method, e.g. "
                                                                                  "{wmse = {w_size = 64}}")


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
    e2e: Optional[E2EConfig] = None  # the end-to-end step; its data defaults to [dataset]'s path
    train: Optional[TrainSpec] = None
    ssl: Optional[SSLSpec] = None
    init: Optional[InitSpec] = None
    published: Optional[PublishedSpec] = None
    report: bool = True
    source: str = ""


# section -> (dataclass, keys the suite sets itself)
_SECTIONS: Dict[str, Tuple[type, Tuple[str, ...]]] = {
    "dataset": (DatasetSpec, ()),
    "flops": (BenchSpec, ("device", "threads", "weights", "weights_format")),
    "bench": (BenchSpec, ("device", "threads", "weights", "weights_format")),
    "e2e": (E2EConfig, ("device", "threads", "weights", "weights_format")),
    "train": (TrainSpec, ("model", "data", "out", "init", "device", "resume", "progress")),
    "ssl": (SSLSpec, ("device", "progress")),
    "init": (InitSpec, ()),
    "published": (PublishedSpec, ()),
}


def _build(cls: type, values: Dict[str, Any], where: str, exclude: Tuple[str, ...] = ()) -> Any:
    if cls in (TrainSpec, SSLSpec) and "options" in values:  # the old nested table of further job fields
        values = dict(values)
        warnings.warn(deprecation("options = {...}", "its keys in the section itself", f"{where}: "), FutureWarning,
                      stacklevel=3)
        values = {**values.pop("options"), **values}
    return from_mapping(cls, values, where, exclude)


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
    sections = {k: _build(cls, raw.pop(k), f"{path} [{k}]", exclude) for k, (cls, exclude) in _SECTIONS.items()
                if k in raw}
    suite = _build(Suite, {"name": path.stem, **raw, **sections}, str(path))
    suite.source = str(path)
    if suite.device == "auto":
        import torch

        suite.device = "cuda" if torch.cuda.is_available() else "cpu"
    return suite
