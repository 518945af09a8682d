"""CPU seconds of this process and of its DataLoader workers: what a loader costs in cores.

`own_cpu_s` counts every thread of this process (getrusage); `live_cpu_s` a running child from
/proc/<pid>/stat (Linux; None elsewhere), read while the workers run, since getrusage counts a
child only once it has exited and been waited for (`reaped_children_cpu_s`, the check after).
Used by the end-to-end bench step (`vidbench.bench.e2e`) and benchmarks/data_loading.py.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
from pathlib import Path
from typing import Collection, List, Optional, Sequence, Set

__all__ = ["own_cpu_s", "reaped_children_cpu_s", "live_cpu_s", "children_cpu_s", "child_pids", "new_children"]


def own_cpu_s() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reaped_children_cpu_s() -> float:
    """User + system CPU seconds of this process's children that have exited and been waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def live_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def children_cpu_s(pids: Sequence[int]) -> Optional[float]:
    """The CPU seconds of the running processes `pids` together; None where /proc cannot tell
    (not Linux). No pids: 0."""
    if not pids:
        return 0.0
    try:
        return sum(live_cpu_s(pid) for pid in pids)
    except (OSError, IndexError, ValueError):
        return None


def child_pids() -> Set[int]:
    """The pids of this process's running multiprocessing children (DataLoader workers among them)."""
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


def new_children(before: Collection[int], expected: int) -> List[int]:
    """The children started since `before` (`child_pids()` then): a DataLoader's `expected`
    workers. Any other count is an error: their CPU time would be missed or counted twice."""
    pids = sorted(child_pids() - set(before))
    if len(pids) != expected:
        raise RuntimeError(f"expected {expected} DataLoader worker process(es), found {len(pids)} new child "
                           "process(es): the loader's CPU time cannot be attributed")
    return pids
