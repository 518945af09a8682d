"""Reading the state dict of a training checkpoint that `torch.load(weights_only=True)` refuses,
without running code.

mmengine's `Runner.save_checkpoint` (mmaction2 1.x `epoch_N.pth`, `best_*.pth`) pickles, beside
`state_dict`, the bookkeeping of the run: `message_hub` (`MessageHub.state_dict()`: OrderedDicts
of `mmengine.logging.history_buffer.HistoryBuffer` objects, whose statistics methods pickle as
`builtins.getattr(buffer, "mean")`), numpy arrays and scalars (`numpy._core.multiarray._reconstruct`,
`numpy.dtype`, `numpy._core.multiarray.scalar`), the optimizer and scheduler state and `meta`
(the config as text, `dataset_meta`, seed). torch's weights-only unpickler stops at the first
of these globals.

`load_training_checkpoint` reads the same zip archive with an allow-list unpickler
(`pickle.Unpickler` with `find_class` overridden) that resolves only:

- torch's tensor rebuild functions, storage classes, dtypes, `torch.Size` / `torch.device` and
  the plain containers torch's weights-only unpickler also allows (OrderedDict, set, ...);
- numpy's array reconstruction: `_reconstruct` (only ever called with `numpy.ndarray` as the
  class), `numpy.dtype`, `numpy.ndarray` and `scalar` (not of object dtype);
- mmengine's / mmcv's bookkeeping classes and `getattr`, to inert stand-ins (`Inert`): objects
  that only record the global's name, their arguments and their state; no method of a real
  class is looked up or called.

Any other global is refused with `RefusedGlobal` naming it: nothing it names is imported or called.
Storages are read from the archive's `data/` records (little-endian, as torch.save writes them).
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import warnings
import zipfile
from codecs import encode
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import numpy as np
import torch

__all__ = ["Inert", "RefusedGlobal", "load_training_checkpoint", "is_zip_checkpoint"]


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; `.name` is ``module.qualname``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Inert:
    """What a training-bookkeeping object unpickles to: the global's name, the arguments it was
    rebuilt with and its pickled state (`state`, `items` for dict / list subclasses). Nothing else."""

    _global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, None, {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pickle's REDUCE calls cls(*args)
        self.args = args

    def __setstate__(self, state: Any) -> None:  # pickle's BUILD
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) of a dict subclass
        self.items[key] = value

    def append(self, value: Any) -> None:  # APPEND(S) of a list subclass
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for value in values:
            self.append(value)

    def __repr__(self) -> str:
        return f"<inert {self._global}>"


def _inert(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (Inert,), {"_global": name, "__module__": __name__})


def _inert_getattr(obj: Any, attr: str) -> Inert:
    """`getattr(obj, attr)` as pickled bound methods are rebuilt: recorded, never looked up."""
    return _inert("builtins.getattr")(obj, attr)


# mmengine / mmcv bookkeeping pickled in training checkpoints (mmengine runner/runner.py
# save_checkpoint: message_hub's HistoryBuffer, meta; mmcv 1.x: ConfigDict in meta)
INERT_GLOBALS = (
    "mmengine.logging.history_buffer.HistoryBuffer",
    "mmengine.logging.message_hub.MessageHub",
    "mmengine.config.config.ConfigDict",
    "mmcv.utils.config.ConfigDict",
    "argparse.Namespace",  # the run's args in DINO's, MAE's and DeiT's training checkpoints
)


def _np_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise RefusedGlobal(f"numpy _reconstruct of {getattr(cls, '__qualname__', cls)!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise RefusedGlobal(f"numpy scalar of dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype)[0]


def _allowed() -> Dict[str, Any]:
    allowed: Dict[str, Any] = {
        "collections.OrderedDict": OrderedDict, "collections.Counter": Counter,
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.bytearray": bytearray,
        "builtins.complex": complex, "builtins.slice": slice, "_codecs.encode": encode,
        "builtins.getattr": _inert_getattr,
        "torch.Size": torch.Size, "torch.device": torch.device,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch._utils._rebuild_tensor": torch._utils._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        "torch.storage.UntypedStorage": torch.UntypedStorage, "torch.UntypedStorage": torch.UntypedStorage,
        "numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype,
    }
    if hasattr(torch._utils, "_rebuild_parameter_with_state"):
        allowed["torch._utils._rebuild_parameter_with_state"] = torch._utils._rebuild_parameter_with_state
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{mod}._reconstruct"] = _np_reconstruct
        allowed[f"{mod}.scalar"] = _np_scalar
    for dtype in {v for v in vars(torch).values() if isinstance(v, torch.dtype)}:
        allowed[str(dtype)] = dtype  # "torch.float32"
    for name in dir(torch):
        if name.endswith("Storage") and name != "TypedStorage" and isinstance(getattr(torch, name), type):
            allowed[f"torch.{name}"] = getattr(torch, name)  # the legacy typed storages: FloatStorage, ...
    for name in INERT_GLOBALS:
        allowed[name] = _inert(name)
    return allowed


_ALLOWED = _allowed()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, records: Callable[[str], bytes]) -> None:
        super().__init__(io.BytesIO(data))
        self._records = records
        self._storages: Dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol 2 writes Python 2 names, as pickle maps them
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if full in _ALLOWED:
            return _ALLOWED[full]
        raise RefusedGlobal(full)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:60]}")
        _, storage_type, key, _location, numel = pid
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        elif isinstance(storage_type, type) and isinstance(getattr(storage_type, "dtype", None), torch.dtype):
            dtype = storage_type.dtype
        else:
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        key = str(key)
        if key not in self._storages:
            data = self._records(key)
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(data) < int(numel) * itemsize:
                raise pickle.UnpicklingError(f"storage {key}: {len(data)} bytes for {numel} elements of {dtype}")
            raw = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if data else torch.UntypedStorage(0)
            self._storages[key] = raw
        return torch.storage.TypedStorage(wrap_storage=self._storages[key], dtype=dtype, _internal=True)


def is_zip_checkpoint(path: Path) -> bool:
    return zipfile.is_zipfile(str(path))


def load_training_checkpoint(path: Path) -> Any:
    """Unpickle a torch.save zip archive with the allow-list above (RefusedGlobal on any other global)."""
    with zipfile.ZipFile(str(path)) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n == "data.pkl" or n.endswith("/data.pkl")), None)
        if pkl is None:
            raise pickle.UnpicklingError("no data.pkl in the archive")
        prefix = pkl[: -len("data.pkl")]
        if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() not in (b"little", b""):
            raise pickle.UnpicklingError("a big-endian archive")

        def record(key: str) -> bytes:
            try:
                return zf.read(f"{prefix}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"storage record data/{key} missing") from None

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            return _Unpickler(zf.read(pkl), record).load()


def describe(obj: Any) -> Tuple[str, ...]:
    """Names of the inert globals in `obj` (for messages and tests)."""
    found = set()

    def walk(x: Any) -> None:
        if isinstance(x, Inert):
            found.add(x._global)
            for v in (x.args, x.state, x.items):
                walk(v)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(obj)
    return tuple(sorted(found))
