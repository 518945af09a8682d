"""Resumable training state (optimizer, LR schedule, RNG, epoch) as safetensors: tensors as
tensors, everything else as JSON metadata. Nothing is unpickled on --resume."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import UserError
from ..results import fsync_path, removing_on_error, writing

__all__ = ["load_train_state", "read_state_info", "read_state_tensors", "save_train_state"]

FORMAT = "vidbench-train-state/1"


class StateError(UserError, ValueError):
    """A resume state file that cannot be used."""


def save_train_state(path: Path, optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int,
                     scaler: Optional[torch.amp.GradScaler] = None, info: Optional[Dict[str, Any]] = None,
                     tensors: Optional[Dict[str, torch.Tensor]] = None) -> Path:
    """Everything --resume needs besides the model weights, after `epoch` epochs. `scheduler` may
    be None (a loop that computes its learning rate); `tensors`: more tensors to keep (the SSL
    loop keeps its model and loader RNG here), read back with `read_state_tensors`."""
    opt = optimizer.state_dict()
    extra = {f"extra.{k}": v.detach().cpu().clone().contiguous() for k, v in (tensors or {}).items()}
    tensors = {"rng.torch": torch.get_rng_state(), **extra}
    scalars: Dict[str, Dict[str, Any]] = {}
    for pid, state in opt["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {
        "format": FORMAT, "epoch": str(epoch), "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "scheduler": json.dumps(scheduler.state_dict() if scheduler is not None else {}),
        "scaler": json.dumps(scaler.state_dict() if scaler is not None and scaler.is_enabled() else {}),
        "info": json.dumps(info or {}),
    }
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique: two writers never share a temporary file
    with writing(path, "the previous state is intact"), removing_on_error(tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=meta)
        fsync_path(tmp)  # on disk before the checkpoint and the epoch's row that follow it
        os.replace(tmp, path)
    return path


def _read(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    from safetensors import SafetensorError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise StateError(f"{path}: not a readable training state ({' '.join(str(err).split())}); "
                         "delete it to start over (nothing in it was run)") from None
    if meta.get("format") != FORMAT:
        raise StateError(f"{path}: not a vidbench training state (format {meta.get('format')!r})")
    return tensors, meta


def read_state_info(path: Path) -> Dict[str, Any]:
    """The `info` a state file was saved with, without loading its tensors."""
    from safetensors import SafetensorError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise StateError(f"{path}: not a readable training state ({' '.join(str(err).split())}); "
                         "delete it to start over (nothing in it was run)") from None
    if meta.get("format") != FORMAT:
        raise StateError(f"{path}: not a vidbench training state (format {meta.get('format')!r})")
    try:
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError as err:
        raise StateError(f"{path}: training state metadata 'info' is not JSON ({err})") from None
    return info if isinstance(info, dict) else {}


def read_state_tensors(path: Path) -> Dict[str, torch.Tensor]:
    """The `tensors` a state file was saved with (without their prefix)."""
    tensors, _ = _read(path)
    return {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}


def load_train_state(path: Path, optimizer: torch.optim.Optimizer, scheduler: Any,
                     scaler: Optional[torch.amp.GradScaler] = None) -> Tuple[int, Dict[str, Any]]:
    """Restore the state into `optimizer`, `scheduler` (and `scaler`); returns (epochs done, info)."""
    tensors, meta = _read(path)
    state: Dict[int, Dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, values in json.loads(meta["optim_scalars"]).items():
        state.setdefault(int(pid), {}).update(values)
    groups = json.loads(meta["param_groups"])
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None:
        scheduler.load_state_dict(json.loads(meta["scheduler"]))
    scaler_state = json.loads(meta["scaler"])
    if scaler is not None and scaler_state:
        scaler.load_state_dict(scaler_state)
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["epoch"]), json.loads(meta["info"])
