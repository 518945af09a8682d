"""Measurements in a fresh process: the one runner the sweep (`python -m vidbench.bench.worker`,
each configuration) and `vidbench compare` (`python -m vidbench.bench.compare`, peak memory) share.

The parent writes a JSON job to the worker's stdin; the worker prints one line, a prefix and a
JSON object (`report`), which `run_worker` finds among whatever else it printed. The worker
imports the same vidbench as the parent (`worker_env`) and dies with it (Linux's
PR_SET_PDEATHSIG, `die_with_parent`): a killed sweep leaves no process behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..results import available_cpus

__all__ = ["WorkerRun", "available_cpus", "die_with_parent", "report", "run_worker", "worker_env"]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send this process `sig` when its parent ends (Linux's
    PR_SET_PDEATHSIG, kept across exec; elsewhere nothing): a launcher that is killed then takes
    the processes it started with it. Used as ``preexec_fn`` and by torchrun's workers."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _die_with_parent_killed() -> None:
    die_with_parent(signal.SIGKILL)


def worker_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """This process's environment, with the directory holding this vidbench first on PYTHONPATH
    (the worker imports the same vidbench, wherever it is run from); `extra` where not set already."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key, value in (extra or {}).items():
        env.setdefault(key, value)
    return env


def report(prefix: str, result: Mapping[str, Any]) -> None:
    """The worker's side: its one result line."""
    print(prefix + json.dumps(result), flush=True)


@dataclass
class WorkerRun:
    """What a worker left: its result (None where it printed none), exit code and stderr."""

    result: Optional[Dict[str, Any]]
    returncode: Optional[int]
    stderr: str = ""
    timed_out: bool = False

    def stderr_tail(self, lines: int) -> str:
        return " | ".join(self.stderr.strip().splitlines()[-lines:])


def run_worker(module: str, job: Mapping[str, Any], prefix: str, timeout: Optional[float] = None,
               env: Optional[Mapping[str, str]] = None) -> WorkerRun:
    """Run ``python -m <module>`` with `job` (JSON) on stdin and return the last line it printed
    that starts with `prefix`, parsed. `timeout` (seconds): the worker is killed past it
    (`timed_out`). `env`: extra environment variables (where not set already)."""
    try:
        proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(job), text=True, capture_output=True,
                              timeout=timeout, env=worker_env(env),
                              preexec_fn=_die_with_parent_killed if sys.platform.startswith("linux") else None)
    except subprocess.TimeoutExpired:
        return WorkerRun(None, None, timed_out=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(prefix):
            return WorkerRun(json.loads(line[len(prefix):]), proc.returncode, proc.stderr)
    return WorkerRun(None, proc.returncode, proc.stderr)
