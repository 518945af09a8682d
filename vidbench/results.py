"""The results store: one directory per run, one CSV per table (bench, accuracy, ssl, ...),
written row by row with pandas as each measurement finishes, plus environment.json.

A killed run loses at most the row in flight; `key_str` normalises the values a resumed run
compares to skip rows already written (the bench sweep's keys).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import io
import json
import math
import os
import platform
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import pandas as pd

from . import __version__
from .errors import UserError

PathLike = Union[str, os.PathLike]


LOCK_FILE = ".vidbench.lock"
_HELD: Dict[str, Tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within a process


class RunInUse(UserError):
    """Another process holds the results directory."""


class DiskFull(UserError):
    """No space left while writing results: what was written before stays readable."""


@contextlib.contextmanager
def run_lock(root: PathLike, what: str = "run"):
    """Hold `root` for this process: an exclusive `fcntl.flock` on `root/.vidbench.lock`, whose
    text names the holder (pid, command, start time). A second process asking for the same
    directory gets a `RunInUse` error naming the holder instead of mixing its rows in. The lock
    goes with the process (also on kill -9); the same process may take it again (a suite's
    stages write into the suite's directory)."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = str((root / LOCK_FILE).resolve())
    if path in _HELD:
        fd, depth = _HELD[path]
        _HELD[path] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _HELD[path]
            _HELD[path] = (fd, depth - 1)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 400).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise RunInUse(f"{root} is in use by another vidbench process ({holder}): wait for it to finish or "
                       "choose another --out") from None
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, {what}, since {stamp}\n".encode(), 0)
    _HELD[path] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _HELD.pop(path)
        os.close(fd)  # releases the flock


def _no_space(err: OSError, path: Path) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


class ResultsStore:
    """Append-only CSV tables under one results directory."""

    def __init__(self, root: PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, table: str) -> Path:
        return self.root / f"{table}.csv"

    def read(self, table: str) -> pd.DataFrame:
        """The table as written so far; a last line cut short by a kill is ignored."""
        path = self.path(table)
        if not path.exists() or path.stat().st_size == 0:
            return pd.DataFrame()
        text = path.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        if not text.strip():
            return pd.DataFrame()
        return pd.read_csv(io.StringIO(text))

    def append(self, table: str, row: Mapping[str, Any]) -> None:
        """Write one row now, as one write() of a whole line, so a kill loses at most that row.
        New columns widen the table (earlier rows get blanks) by an atomic rewrite."""
        path = self.path(table)
        new = pd.DataFrame([dict(row)])
        header = self.read(table).columns.tolist() if path.exists() else []
        if not header:
            _atomic_write(path, new.to_csv(index=False))
            return
        extra = [c for c in new.columns if c not in header]
        if extra:
            old = self.read(table)
            _atomic_write(path, pd.concat([old, new], ignore_index=True)[header + extra].to_csv(index=False))
            return
        line = new.reindex(columns=header).to_csv(header=False, index=False)
        _drop_partial_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        except OSError as err:
            if _no_space(err, path):
                os.close(fd)
                fd = -1
                _drop_partial_tail(path)  # a row half-written by a full disk is cut: earlier rows stay readable
                raise DiskFull(f"no space left on the device writing {path}: the rows written before are intact; "
                               "free space and rerun with --resume") from None
            raise
        finally:
            if fd >= 0:
                os.close(fd)

    def rewrite(self, table: str, df: pd.DataFrame) -> None:
        """Replace a table whole (atomically): for dropping rows a resumed run redoes."""
        _atomic_write(self.path(table), df.to_csv(index=False))

    def write_environment(self, device: str = "cpu", extra: Optional[Dict[str, Any]] = None) -> Path:
        path = self.root / "environment.json"
        info = environment(device)
        info.update(extra or {})
        _atomic_write(path, json.dumps(info, indent=2, sort_keys=True) + "\n")
        return path


def key_str(value: Any) -> str:
    """A value as a resume key: integral floats lose their ".0", missing values become ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _drop_partial_tail(path: Path) -> None:
    """Cut a last line left unfinished by a killed writer, so the next row starts on its own line."""
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def _atomic_write(path: Path, text: str) -> None:
    """Write a temporary file of a unique name, then rename it over `path`: a crash or a full
    disk leaves the old file as it was."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _no_space(err, path):
            raise DiskFull(f"no space left on the device writing {path}: the previous version is intact; "
                           "free space and rerun with --resume") from None
        raise


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> Dict[str, Any]:
    """What a reader needs to interpret a run: versions, commit, device, CPU, threads, date."""
    import torch

    info: Dict[str, Any] = {
        "vidbench_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "none",
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["device_name"] = info["cpu"]
    return info
