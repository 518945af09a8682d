"""`python -m vidbench.bench.worker`: measure one configuration in this fresh process.

Reads a JSON job on stdin, {"measure": `measure`'s keyword arguments (`point.measure_args`),
"threads": N, "mem_limit_bytes": null or N}, and prints one line `VIDBENCH_RESULT {json}` with the
row (status "ok", or "oom" / "error" with the message).

A memory limit on CPU caps this process's peak resident memory: a watchdog thread reads the
resident set every millisecond and ends the process with an "oom" row the moment it passes the
limit, and the kernel's peak (VmHWM) is checked after the steps, so a spike between two reads
is caught too; the row records the process's peak (process_peak_mb). On CUDA the limit caps the
caching allocator (`set_per_process_memory_fraction`), which raises torch's out-of-memory error."""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Optional

import torch

from ..checkpoint import json_tuples
from .measure import measure
from .memory import MIB, current_rss_bytes, peak_rss_bytes
from .point import RESULT_PREFIX, error_text, is_oom
from .process import report


def _report(row: dict) -> None:
    report(RESULT_PREFIX, row)


def _over_limit(limit: int, rss: int) -> dict:
    return {"status": "oom", "error": f"peak resident memory {rss / MIB:.0f} MiB exceeded the limit of "
                                      f"{limit / MIB:.0f} MiB", "process_peak_mb": rss / MIB}


def _watchdog(limit: int, stop: threading.Event) -> None:
    while not stop.wait(0.001):
        rss = current_rss_bytes() or 0
        if rss > limit:
            _report(_over_limit(limit, rss))
            os._exit(0)  # noqa: SLF001 (the process must end now, before it grows further)


def main() -> int:
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(int(job["threads"]))
    limit: Optional[int] = job.get("mem_limit_bytes")
    args = json_tuples(job["measure"])
    cpu = torch.device(args.get("device", "cpu")).type == "cpu"
    stop = threading.Event()
    if limit is not None and cpu:
        threading.Thread(target=_watchdog, args=(limit, stop), daemon=True).start()
    elif limit is not None and torch.cuda.is_available():
        device = torch.device(args["device"])
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
    try:
        row = {"status": "ok", **measure(**args, fresh_process=True)}
    except Exception as exc:
        row = {"status": "oom" if is_oom(exc) else "error", "error": error_text(exc)}
    stop.set()
    if cpu:
        row["process_peak_mb"] = peak_rss_bytes() / MIB
        if limit is not None and peak_rss_bytes() > limit:
            row = {**row, **_over_limit(limit, peak_rss_bytes())}
    _report(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
