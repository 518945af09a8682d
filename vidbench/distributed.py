"""torchrun support: process group from the environment torchrun sets, sharding, reductions.

Run any training or evaluation under ``torchrun --nproc_per_node N -m vidbench train ...``
(or ``python -m torch.distributed.run``): NCCL on GPUs, gloo on CPU. Without torchrun's
environment everything runs in one process and the helpers are no-ops.

One floor below the rooms that use it: `vidbench.train` (training, evaluation) and
`vidbench.bench` (the multi-process bench, `vidbench.bench.ddp`) both import it from here.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, NoReturn, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from .errors import ConfigError
from .options import check_device

__all__ = ["DistEnv", "NET_ENV", "ShardSampler", "all_gather_lists", "all_reduce_sum", "broadcast_json", "exit_process",
           "interconnect", "launched_nodes", "launched_world", "setup_distributed", "slowest_steps"]

# the environment variables that choose how the processes reach each other (NCCL's and gloo's network interface,
# InfiniBand, the transport): what a multi-machine row records of the interconnect
NET_ENV = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_IB_HCA", "NCCL_NET",
           "NCCL_P2P_DISABLE", "NCCL_NET_GDR_LEVEL", "NCCL_CROSS_NIC", "FI_PROVIDER")

T = TypeVar("T")

_JOINED = False  # this process joined a process group (`setup_distributed`): `exit_process` ends it early


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_world() -> int:
    """The process count torchrun started this process in (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_nodes() -> int:
    """The machines torchrun's processes span (its GROUP_WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("GROUP_WORLD_SIZE", "1"))


def interconnect() -> Dict[str, Any]:
    """What this run can see of how its processes talk (every process calls it): the hosts they
    run on (name x processes, gathered), the network variables set on rank 0 (`NET_ENV`, "none
    set" where none is), and NCCL's version where the backend is NCCL."""
    import socket
    from collections import Counter

    hosts = Counter(all_gather_lists([socket.gethostname()]))
    net = [f"{k}={os.environ[k]}" for k in NET_ENV if os.environ.get(k)]
    nccl = None
    if dist.is_initialized() and dist.get_backend() == "nccl":
        version = torch.cuda.nccl.version()
        nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    return {"hosts": "; ".join(f"{h} x{n}" for h, n in sorted(hosts.items())),
            "net_env": ", ".join(net) or "none set", "nccl_version": nccl}


def setup_distributed(device: str = "auto") -> DistEnv:
    """Join torchrun's process group when WORLD_SIZE > 1 (idempotent); pick the device.

    Args:
        device: "auto" (cuda where available, else cpu), "cpu", "cuda", "cuda:N" or "mps"
            (`vidbench.options.check_device`: one that this machine lacks is a ConfigError). Under
            torchrun each process takes cuda:<local rank>; outside it "cuda:N" is device N.
    """
    world = launched_world()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = check_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    use_cuda = device.startswith("cuda")
    if use_cuda and world > 1:
        if ":" in device:
            raise ConfigError(f"device {device}: under torchrun each process takes cuda:<local rank>; give cuda")
        dev = torch.device(f"cuda:{local_rank}")
    else:
        dev = torch.device(device if ":" in device or not use_cuda else "cuda:0")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        global _JOINED
        _JOINED = True
        atexit.register(_destroy_process_group)
        if not use_cuda:  # processes share the CPU: no oversubscription
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return DistEnv(rank, world, local_rank, dev)


def exit_process(code: int) -> NoReturn:
    """End this process with exit status `code`: what the command line's entries (``python -m
    vidbench`` and ``python -m vidbench.bench.ddp``) do with their result.

    A process that joined a process group leaves it, runs Python's atexit handlers, flushes its
    streams and ends without finalising the interpreter (``os._exit``). Finalising can abort a
    finished run (SIGABRT, "terminate called without an active exception"): gloo's worker thread
    may release the last reference to a finished collective's tensors after the interpreter began
    to finalise, and its wait for the GIL then ends the thread inside a destructor, which
    terminates the process (seen in core dumps of `vidbench bench --nproc 2` on a loaded 2-core
    CPU, about one exit in ten; PyTorch issue 190489). ``destroy_process_group`` does not help:
    it unregisters the group, and the group's threads live until the interpreter collects it.
    Elsewhere this is ``sys.exit(code)``.
    """
    if not _JOINED:
        sys.exit(code)
    _destroy_process_group()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing more can be said through it
            pass
    os._exit(code)


def _destroy_process_group() -> None:
    """Leave the process group before the interpreter exits (registered by `setup_distributed`).

    A process that exits with gloo's group still up can abort in its C++ teardown ("terminate called
    without an active exception", SIGABRT) after all its work is done: a finished run reported as failed.
    Destroying the group is local to this process (no collective), so a rank that stopped early cannot hang it.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes (in place; returns it). A no-op in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_lists(items: List[T]) -> List[T]:
    """Concatenate a picklable list from every process (for small reports such as bad files)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return list(items)
    gathered: List[List[T]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, list(items))
    return [x for part in gathered for x in part]


def broadcast_json(value: Any) -> Any:
    """Rank 0's small JSON-able value on every rank (as text in a byte tensor: nothing is unpickled)."""
    data = torch.tensor(list(json.dumps(value).encode()) if dist.get_rank() == 0 else [], dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64)
    dist.broadcast(size, 0)
    buf = data if dist.get_rank() == 0 else torch.empty(int(size.item()), dtype=torch.uint8)
    dist.broadcast(buf, 0)
    return json.loads(bytes(buf.tolist()).decode())


def slowest_steps(times_s: List[float]) -> List[float]:
    """Per step, the largest time over processes (a DDP step ends when every process has ended it)."""
    t = torch.tensor(times_s, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... : every item exactly once over all processes (evaluation
    must not repeat items to pad shards, as DistributedSampler does)."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))
