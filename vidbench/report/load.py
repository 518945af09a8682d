"""Read a results directory (bench.csv, accuracy.csv, ssl.csv, environment.json) into a Run."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Union

import pandas as pd

TABLES = ("bench", "accuracy", "ssl")


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


def load_run(path: Union[str, Path]) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"results directory not found: {path}")
    env_path = path / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    tables = {}
    for name in TABLES:
        csv = path / f"{name}.csv"
        if csv.exists() and csv.stat().st_size > 0:
            tables[name] = pd.read_csv(csv)
    if not tables:
        raise ValueError(f"{path} holds none of {', '.join(t + '.csv' for t in TABLES)}: nothing to report")
    return Run(path, env, tables)
