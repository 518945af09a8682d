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
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import pandas as pd

from .errors import UserError
from .version import __version__

PathLike = Union[str, os.PathLike]


LOCK_FILE = ".vidbench.lock"
_HELD: Dict[str, Tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within a process


class RunInUse(UserError):
    """Another process holds the results directory."""


class OutputError(UserError):
    """An output that cannot be written (full disk, quota, read-only or forbidden place): one
    line naming the file; what was written before stays readable."""


class DiskFull(OutputError):
    """No space left while writing results: what was written before stays readable."""


# errno -> how the message says it: the failures of an output path that are the user's to fix
OUTPUT_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}


def _errno_of(err: BaseException) -> Optional[int]:
    """The errno of an OSError, or of a safetensors error that wraps one ("... (os error 28)")."""
    if isinstance(err, OSError):
        return err.errno
    found = re.search(r"\(os error (\d+)\)", str(err))
    return int(found.group(1)) if found and type(err).__name__ == "SafetensorError" else None


def output_error(err: BaseException, path: PathLike, kept: str = "", exact: bool = False) -> Optional[OutputError]:
    """The user error for `err` raised while writing `path`, or None when it is not an output
    failure (a bug keeps its traceback). `kept`: what stays intact, said after the reason;
    `exact`: name `path` itself, not the file inside it the error names."""
    code = _errno_of(err)
    if code not in OUTPUT_ERRNOS:
        return None
    named = getattr(err, "filename", None)
    where = named if named and not exact and not str(named).endswith(".tmp") else path  # not a temporary name
    cls = DiskFull if code in (errno.ENOSPC, errno.EDQUOT) else OutputError
    text = f"{OUTPUT_ERRNOS[code]} writing {where}" + (f": {kept}" if kept else "")
    if cls is DiskFull:
        text += "; free space and run again (with --resume where the command has it)"
    exc = cls(text)
    exc.errno = code
    return exc


@contextlib.contextmanager
def writing(path: PathLike, kept: str = "", exact: bool = False):
    """Around the writes of an output: a full disk, quota, read-only or forbidden path becomes
    one `OutputError` naming the file (`vidbench` prints it and exits 2), not a traceback."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        mapped = output_error(err, path, kept, exact)
        if mapped is None:
            raise
        raise mapped from None


@contextlib.contextmanager
def removing_on_error(tmp: PathLike):
    """Delete the temporary file `tmp` when the block fails (a full disk leaves no .tmp behind)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_path(path: PathLike) -> None:
    """Flush a written file to the disk (before a step that depends on it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def building(out: PathLike):
    """Make a folder whole or not at all: yields a temporary folder to write into, beside `out`
    (inside it where `out` is an existing empty folder, e.g. a mount point); when the block ends
    the result takes `out`'s place (a previous generation there is removed only then), when it
    fails the temporary folder is removed and `out` stays as it was. A full disk or read-only
    place is an `OutputError` naming `out`."""
    import shutil

    out = Path(out)
    inside = out.is_dir() and not any(out.iterdir())
    name = f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
    tmp = out / name if inside else out.with_name(name)
    try:
        with writing(out, "it is left as it was", exact=True):
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        with writing(out, "it is left as it was", exact=True):
            yield tmp
            if inside:  # each entry renamed into the empty folder, the temporary one removed
                for entry in sorted(tmp.iterdir()):
                    os.rename(entry, out / entry.name)
                tmp.rmdir()
                return
            old = None
            if out.exists():
                old = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.old")
                os.rename(out, old)
            os.rename(tmp, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_all(fd: int, data: bytes, path: PathLike) -> None:
    """os.write until every byte is written: a short count is followed by another write, which
    on a full disk raises ENOSPC; a write of nothing is taken as a full disk."""
    view = memoryview(data)
    while len(view):
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, "No space left on device (a write of 0 bytes)", str(path))
        view = view[n:]


@contextlib.contextmanager
def run_lock(root: PathLike, what: str = "run"):
    """Hold `root` for this process: an exclusive `fcntl.flock` on `root/.vidbench.lock`, whose
    text names the holder (pid, command, start time). A second process asking for the same
    directory gets a `RunInUse` error naming the holder instead of mixing its rows in. The lock
    goes with the process (also on kill -9); the same process may take it again (a suite's
    stages write into the suite's directory)."""
    import fcntl

    root = Path(root)
    created = _make_dirs(root)
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
    with writing(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 400).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise RunInUse(f"{root} is in use by another vidbench process ({holder}): wait for it to finish or "
                       "choose another --out") from None
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        with writing(path):
            os.ftruncate(fd, 0)
            write_all(fd, f"pid {os.getpid()}, {what}, since {stamp}\n".encode(), path)
    except BaseException:
        os.close(fd)
        _remove_if_only_lock(created)
        raise
    _HELD[path] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _HELD.pop(path)
        _remove_if_only_lock(created)  # a refused run leaves no folder holding only its lock
        os.close(fd)  # releases the flock


def _make_dirs(root: Path) -> List[Path]:
    """mkdir -p `root` (a user error naming it when it cannot be made); returns the folders it
    created, deepest first."""
    created: List[Path] = []
    walk = root
    while not walk.exists() and walk != walk.parent:
        created.append(walk)
        walk = walk.parent
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
    return created


def _remove_if_only_lock(created: List[Path]) -> None:
    """Remove the folders this lock created when nothing but the lock file is in them (a run
    refused before writing anything)."""
    if not created:
        return
    root = created[0]
    try:
        if {p.name for p in root.iterdir()} - {LOCK_FILE}:
            return
        (root / LOCK_FILE).unlink(missing_ok=True)
        for folder in created:
            folder.rmdir()
    except OSError:
        pass


class ResultsStore:
    """Append-only CSV tables under one results directory."""

    def __init__(self, root: PathLike, create: bool = True):
        self.root = Path(root)
        if create:  # create=False: to read an existing store without making a folder
            with writing(self.root):
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

    def rows_to_resume(self, table: str, resume: bool) -> List[Dict[str, Any]]:
        """The rows `table` holds, for a run that continues it (`resume`); without `resume`, rows
        there are an error rather than a silent mix of runs."""
        existing = self.read(table)
        if not existing.empty and not resume:
            raise FileExistsError(f"{self.path(table)} already has {len(existing)} rows: pass resume=True "
                                  "(--resume) to continue it, or choose another output directory")
        return existing.to_dict("records")

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
        with writing(path, "the rows written before are intact"):
            _drop_partial_tail(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            write_all(fd, line.encode(), path)  # all of the line, or an error: a short write is never ignored
            os.fsync(fd)
        except OSError as err:
            mapped = output_error(err, path, "the rows written before are intact")
            if mapped is None:
                raise
            os.close(fd)
            fd = -1
            with contextlib.suppress(OSError):
                _drop_partial_tail(path)  # a row half-written by a full disk is cut: earlier rows stay readable
            raise mapped from None
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


def write_file(path: PathLike, data: Union[str, bytes]) -> Path:
    """Write a whole output file atomically (text or bytes): `_atomic_write`, the shared write
    path of every output that is not a results table (reports, plots, manifests)."""
    path = Path(path)
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, data)
    return path


def _atomic_write(path: Path, text: Union[str, bytes]) -> None:
    """Write a temporary file of a unique name, then rename it over `path`: a crash or a full
    disk leaves the old file as it was."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with writing(path, "the previous version is intact"), removing_on_error(tmp):
        with (open(tmp, "wb") if isinstance(text, bytes) else open(tmp, "w", newline="")) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


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


# where a row ran, as columns of the row (`machine_columns`): versions, the GPU and the CPU
MACHINE_COLUMNS = ("torch_version", "cuda_version", "cudnn_version", "gpu_driver", "gpu_name", "gpu_power_limit_w",
                   "gpu_memory_mb", "cpu_model", "cpu_cores", "cpu_cores_usable")
_SMI_FIELDS = ("uuid", "name", "driver_version", "power.limit", "memory.total")


def _nvidia_smi() -> List[Dict[str, str]]:
    """One dict per GPU from `nvidia-smi --query-gpu=... --format=csv` ([] where there is none)."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(_SMI_FIELDS)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [dict(zip(_SMI_FIELDS, (v.strip() for v in line.split(",")))) for line in out.stdout.splitlines()
            if line.count(",") == len(_SMI_FIELDS) - 1]


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text)  # nvidia-smi writes "[N/A]" where it cannot tell
    except (TypeError, ValueError):
        return None


def gpu_columns(device: str) -> Dict[str, Any]:
    """The CUDA device's name, memory (MiB), driver and power limit (W), from torch and nvidia-smi
    (matched by UUID; the power limit and driver are None where nvidia-smi is absent)."""
    import torch

    dev = torch.device(device)
    props = torch.cuda.get_device_properties(dev.index if dev.index is not None else torch.cuda.current_device())
    uuid_text = str(getattr(props, "uuid", "")).lower().replace("gpu-", "")
    rows = _nvidia_smi()
    match = next((r for r in rows if uuid_text and r["uuid"].lower().replace("gpu-", "") == uuid_text),
                 rows[0] if len(rows) == 1 else {})
    return {"gpu_name": props.name, "gpu_memory_mb": props.total_memory / 2**20,
            "gpu_driver": match.get("driver_version"), "gpu_power_limit_w": _number(match.get("power.limit"))}


_MACHINE: Dict[str, Dict[str, Any]] = {}


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine_columns(device: str = "cpu") -> Dict[str, Any]:
    """Where a row ran (`MACHINE_COLUMNS`): torch's version; CUDA's (torch's build), cuDNN's, the
    driver's, and the GPU's model, power limit and memory on a CUDA device (None elsewhere); the
    CPU's model, its logical cores and the cores this process may use. Asked once per device."""
    import torch

    device = str(device)
    if device not in _MACHINE:
        info: Dict[str, Any] = dict.fromkeys(MACHINE_COLUMNS)
        info.update(torch_version=torch.__version__, cpu_model=cpu_name(), cpu_cores=os.cpu_count(),
                    cpu_cores_usable=available_cpus())
        if device.startswith("cuda") and torch.cuda.is_available():
            cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
            info.update(cuda_version=torch.version.cuda, cudnn_version=cudnn, **gpu_columns(device))
        _MACHINE[device] = info
    return dict(_MACHINE[device])


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
    if device != "meta":  # a count-only run ran on no device
        info.update({k: v for k, v in machine_columns(device).items() if k not in info})
    return info
