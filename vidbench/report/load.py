"""Read a results directory (bench.csv, accuracy.csv, ssl.csv, stages.csv, the scaling study's
scaling.csv, `vidbench compare`'s compare.csv and compare_profile.csv, `vidbench bench --data`'s
e2e.csv, environment.json) into a Run."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import pandas as pd

from ..errors import UserError

TABLES = ("bench", "accuracy", "ssl")
MEASURED = TABLES + ("scaling", "compare", "compare_profile", "e2e")  # a directory holding any of these is a run


@dataclass
class Run:
    """One results directory: its environment and its tables (empty where absent)."""

    path: Path
    env: Dict[str, Any] = field(default_factory=dict)
    tables: Dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def device(self) -> str:
        """A label that tells devices apart: kind plus hardware name."""
        kind = str(self.env.get("device", "unknown"))
        return f"{kind}: {self.env.get('device_name', 'unknown')}"

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())


class ReportError(UserError, ValueError):
    """A results directory the report cannot read: the message names the file."""


def _columns() -> Dict[str, Tuple[str, ...]]:
    """Columns each table is read with: a CSV written by an older version, or edited by hand,
    gets the missing ones as blanks instead of failing the report."""
    from ..bench.sweep import BENCH_COLUMNS

    return {"bench": BENCH_COLUMNS,
            "accuracy": ("model", "init", "data", "split", "views", "top1", "top5", "num_videos", "skipped_items"),
            "ssl": ("method", "epochs", "knn_top1", "linear_top1", "pretrain_time_s", "status"),
            "stages": ("stage", "status", "seconds", "message")}


def read_table(csv: Path, name: str) -> pd.DataFrame:
    """One results CSV; a file pandas cannot parse is an error naming the file and the line."""
    try:
        df = pd.read_csv(csv)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ReportError(f"{csv}: not a readable CSV: {' '.join(str(err).split())}") from None
    missing = [c for c in _columns().get(name, ()) if c not in df.columns]
    return df.reindex(columns=list(df.columns) + missing) if missing else df


def load_run(path: Union[str, Path]) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"results directory not found: {path}")
    env_path = path / "environment.json"
    try:
        env = json.loads(env_path.read_text()) if env_path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{env_path}: not readable JSON ({err})") from None
    tables = {}
    for name in MEASURED + ("stages",):
        csv = path / f"{name}.csv"
        if csv.exists() and csv.stat().st_size > 0:
            tables[name] = read_table(csv, name)
    if not any(name in tables for name in MEASURED):
        raise ReportError(f"{path} holds none of {', '.join(t + '.csv' for t in MEASURED)}: nothing to report")
    return Run(path, env, tables)
