"""Reading a checkpoint from disk without running code: what a file or directory holds.

Every format vidbench reads comes through `read_source`, which returns a `Source`: the flat
tensors (torch tensors or numpy arrays, keyed by their name in the file), the file's own metadata
and, for a Hugging Face directory, its `config.json` and preprocessing config. Nothing here
unpickles: pickle-based files (.pth, .pt, .bin, .pyth) go through `torch.load(weights_only=True)`,
which only rebuilds tensors and plain containers; a training checkpoint it refuses (mmengine's
`epoch_N.pth`: message hub, numpy scalars, optimizer state) is read by the allow-list unpickler
of `_training_pickle.py` (tensors, numpy arrays and inert stand-ins for the bookkeeping, any other
global refused by name, never `weights_only=False`), `.npz` through `numpy.load(allow_pickle=False)`,
and Flax checkpoints (scenic) through msgpack with numpy arrays decoded from their bytes.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import UserError

__all__ = ["Source", "read_source", "looks_like_checkpoint", "WeightsError", "PathLike"]

PathLike = Union[str, os.PathLike]

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".pyth", ".ckpt", ".tar")  # .tar: MoCo v3's torch.save .pth.tar
# Wrappers training code puts around a state dict (SlowFast / TimeSformer: model_state; others).
_CONTAINERS = ("model_state", "state_dict", "model", "module", "model_ema", "teacher",  # teacher: DINO's
               "target_encoder", "encoder")  # V-JEPA 2 pre-training: target_encoder (the EMA) first
_PROBES = "classifiers"  # V-JEPA 2 attentive-probe files: a list of state dicts, read as classifiers.N.*
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")


class WeightsError(UserError, ValueError):
    """A checkpoint that cannot be read or does not fit: the message names the file and what is wrong."""


@dataclass
class Source:
    """What a checkpoint holds.

    Attributes:
        path: the file or directory given.
        kind: how it was read: "safetensors", "torch", "npz", "msgpack" or "hf-dir".
        state: flat name -> tensor (torch.Tensor, or numpy array for npz / msgpack).
        metadata: the safetensors header metadata (vidbench's own config lives there).
        config: a Hugging Face directory's config.json.
        preprocessor: a Hugging Face directory's preprocessing config, where it has one.
        container: the wrapper key the state dict was found under ("model_state", ...; V-JEPA 2's
            "target_encoder", "target_encoder+classifiers", "classifiers"), if any.
        weights_file: the file the tensors came from.
        meta: a training checkpoint's top-level `meta` dict (mmengine / mmcv: config text,
            `dataset_meta`), where it has one.
        notes: what a format chose in reading the file that the results should say (V-JEPA 2: which
            of the file's two encoders); they join the loaded model's `pretrained_cfg.notes`.
    """

    path: Path
    kind: str
    state: Dict[str, Any]
    metadata: Dict[str, str] = field(default_factory=dict)
    config: Optional[Dict[str, Any]] = None
    preprocessor: Optional[Dict[str, Any]] = None
    container: Optional[str] = None
    weights_file: Optional[Path] = None
    meta: Optional[Dict[str, Any]] = None
    notes: List[str] = field(default_factory=list)

    def shape(self, key: str) -> Tuple[int, ...]:
        return tuple(self.state[key].shape)

    def has(self, *keys: str) -> bool:
        return all(k in self.state for k in keys)

    def keys_with_prefix(self, prefix: str) -> list:
        return [k for k in self.state if k.startswith(prefix)]

    def error(self, message: str) -> WeightsError:
        return WeightsError(f"{self.path}: {message}")


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    return data


def _read_safetensors(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable safetensors file ({err})") from None
    return state, metadata


def _unwrap(obj: Any, path: Path) -> Tuple[Dict[str, torch.Tensor], Optional[str], Optional[Dict[str, Any]]]:
    """A flat tensor dict from what torch.load returned, descending into one wrapper key; and the
    top-level `meta` dict of a training checkpoint."""
    container = None
    meta = obj.get("meta") if isinstance(obj, Mapping) and isinstance(obj.get("meta"), Mapping) else None
    probes: Dict[str, torch.Tensor] = {}
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        listed = obj.get(_PROBES)
        if isinstance(listed, (list, tuple)) and listed and all(isinstance(p, Mapping) for p in listed):
            probes = {f"{_PROBES}.{i}.{k}": v for i, p in enumerate(listed) for k, v in p.items()
                      if isinstance(v, torch.Tensor)}
        for key in _CONTAINERS:
            if isinstance(obj.get(key), Mapping):
                obj, container = obj[key], key
                break
        if probes and container in (None, "target_encoder", "encoder"):
            obj = {**(obj if container else {}), **probes}
            container = f"{container}+{_PROBES}" if container else _PROBES
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{path}: no tensors found (top-level keys: {sorted(map(str, obj))[:8]})")
    return state, container, dict(meta) if meta is not None else None


def _unpickler_reason(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if ("WeightsUnpickler error" in ln or "unsupported" in ln.lower())
              and "please file an issue" not in ln.lower()]
    return (useful or lines or [type(err).__name__])[0]


_TORCH_PICKLE_NOISE = "Detected pickle protocol"  # torch's UserWarning for protocols above 2 ("please file an issue")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def _pickle_globals(path: Path) -> list:
    """The globals ("module.name") the pickles at the start of `path` name, read opcode by opcode
    with pickletools (nothing is imported or called); a legacy torch.save file is several pickles
    followed by raw storage bytes, where the scan stops."""
    import pickletools

    found: list = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while f.tell() < size:
            memo: Dict[Any, Any] = {}
            recent: list = []
            try:
                for op, arg, _ in pickletools.genops(f):
                    if op.name in _STRING_OPS:
                        recent.append(arg)
                    elif op.name == "MEMOIZE":
                        memo[len(memo)] = recent[-1] if recent else None
                    elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                        memo[arg] = recent[-1] if recent else None
                    elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                        recent.append(memo.get(arg))
                    elif op.name == "GLOBAL":
                        found.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(recent) >= 2:
                        found.append(f"{recent[-2]}.{recent[-1]}")
            except (ValueError, EOFError, UnicodeDecodeError, OverflowError):
                break
    return found


def _refused_global(path: Path) -> Optional[str]:
    """The first global of a plain pickle that neither torch's weights-only unpickler nor the
    training-checkpoint allow-list takes."""
    import _compat_pickle

    from ._training_pickle import _ALLOWED

    safe = {"collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.slice",
            "builtins.complex", "torch._utils._rebuild_tensor", "torch._tensor._rebuild_from_type_v2"}
    for name in _pickle_globals(path):
        module, _, attr = name.rpartition(".")
        module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{attr}"
        if full not in _ALLOWED and full not in safe:
            return full
    return None


def _read_torch(path: Path) -> Tuple[Dict[str, torch.Tensor], Optional[str], Optional[Dict[str, Any]]]:
    import pickle

    from ._training_pickle import RefusedGlobal, is_zip_checkpoint, load_training_checkpoint

    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch.save's zip archive, or a legacy pickle
        raise WeightsError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_TORCH_PICKLE_NOISE)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not is_zip_checkpoint(path):
            refused = _refused_global(path)
            if refused is not None:
                raise WeightsError(f"{path}: refused: the pickle names the global {refused}, which is not a tensor "
                                   "or a plain container (read with torch.load(weights_only=True); nothing was "
                                   "executed)") from None
            raise WeightsError(f"{path}: refused: the pickle holds more than tensors and plain containers "
                               f"(loaded with weights_only=True; nothing was executed): {_unpickler_reason(err)}") from None
        try:  # a training checkpoint (mmengine epoch_N.pth): the allow-list unpickler, no code run
            obj = load_training_checkpoint(path)
        except RefusedGlobal as refused:
            raise WeightsError(f"{path}: refused: the pickle names the global {refused.name}, which is not a "
                               "tensor, a plain container or known training-checkpoint bookkeeping (allow-list "
                               "reader after torch.load weights_only=True; nothing was executed)") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                RuntimeError, zipfile.BadZipFile) as err2:
            raise WeightsError(f"{path}: refused: the pickle holds more than tensors and plain containers "
                               f"({_unpickler_reason(err)}) and is not a training checkpoint the allow-list "
                               f"reader takes ({type(err2).__name__}: {str(err2)[:120]}); nothing was executed"
                               ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint (truncated or another format?): "
                           f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return _unwrap(obj, path)


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    try:
        with np.load(str(path), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise WeightsError(f"{path}: not a readable .npz archive ({err})") from None


# Flax's msgpack extension types (flax.serialization): 1 = ndarray, 2 = native complex, 3 = numpy scalar
MAX_TREE_DEPTH = 64  # a Flax checkpoint nests a few levels per module; deeper is not a checkpoint


class _BadTree(Exception):
    """What is wrong inside a msgpack file (reported by `_read_msgpack` with the file's name)."""


def _shape(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                          for n in value):
        raise _BadTree(f"{what}: shape {value!r} is not a list of sizes")
    return tuple(value)


def _array(data: bytes) -> np.ndarray:
    import msgpack

    try:
        shape, dtype, buffer = msgpack.unpackb(data)
        dtype = np.dtype(dtype)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException, msgpack.exceptions.ExtraData) as err:
        raise _BadTree(f"an array is not (shape, dtype, bytes) ({type(err).__name__}: {err})") from None
    shape = _shape(shape, "an array")
    if not isinstance(buffer, bytes) or dtype.hasobject or len(buffer) != int(np.prod(shape)) * dtype.itemsize:
        raise _BadTree(f"an array of shape {shape} and dtype {dtype} does not match its "
                       f"{len(buffer) if isinstance(buffer, bytes) else type(buffer).__name__} bytes")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _msgpack_ext(code: int, data: bytes) -> Any:
    import msgpack

    if code == 1:
        return _array(data)
    try:
        if code == 3:
            dtype, buffer = msgpack.unpackb(data)
            return np.frombuffer(buffer, dtype=np.dtype(dtype))[0]
        if code == 2:
            real, imag = msgpack.unpackb(data)
            return complex(real, imag)
    except (ValueError, TypeError, IndexError, msgpack.exceptions.UnpackException, msgpack.exceptions.ExtraData) as err:
        raise _BadTree(f"a {'scalar' if code == 3 else 'complex number'} that does not decode "
                       f"({type(err).__name__}: {err})") from None
    return msgpack.ExtType(code, data)


def _unchunk(tree: Any, where: str = "", depth: int = 0) -> Any:
    """Flax splits arrays over 2 GiB into chunks; join them back (checking what the file says)."""
    if depth > MAX_TREE_DEPTH:
        raise _BadTree(f"nested more than {MAX_TREE_DEPTH} levels deep (at {where[:80]}...)")
    if not isinstance(tree, dict):
        return tree
    if tree.get("__msgpack_chunked_array__"):
        chunks, shape = tree.get("chunks"), tree.get("shape")
        if not isinstance(chunks, dict) or any(str(i) not in chunks for i in range(len(chunks))):
            raise _BadTree(f"{where or '/'}: a chunked array without chunks '0'..'n-1'")
        if shape is None:
            raise _BadTree(f"{where or '/'}: a chunked array without its shape")
        shape = _shape(shape, where or "/")
        parts = [chunks[str(i)] for i in range(len(chunks))]
        if not all(isinstance(c, np.ndarray) for c in parts):
            raise _BadTree(f"{where or '/'}: a chunk that is not an array")
        flat = np.concatenate([c.ravel() for c in parts]) if parts else np.zeros(0)
        if flat.size != int(np.prod(shape)):
            raise _BadTree(f"{where or '/'}: chunks of {flat.size} values for shape {shape}")
        return flat.reshape(shape)
    return {k: _unchunk(v, f"{where}/{k}", depth + 1) for k, v in tree.items()}


def _flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
    elif isinstance(tree, np.ndarray):
        out[prefix[:-1]] = tree
    return out


def _read_msgpack(path: Path) -> Dict[str, np.ndarray]:
    """A Flax msgpack checkpoint; whatever is wrong in it (deep nesting, an array whose bytes do
    not fit its shape, a chunk list without its shape) is one WeightsError naming the file."""
    import msgpack

    try:
        tree = msgpack.unpackb(path.read_bytes(), ext_hook=_msgpack_ext, raw=False, strict_map_key=False)
        if not isinstance(tree, dict):
            raise WeightsError(f"{path}: a msgpack file that is not a Flax checkpoint (top level "
                               f"{type(tree).__name__})")
        state = _flatten(_unchunk(tree))
    except _BadTree as err:
        raise WeightsError(f"{path}: not a readable Flax msgpack checkpoint: {err}") from None
    except msgpack.exceptions.StackError:
        raise WeightsError(f"{path}: not a readable Flax msgpack checkpoint: nested deeper than msgpack reads "
                           f"(a checkpoint nests a few levels per module)") from None
    except (ValueError, msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException, TypeError,
            RecursionError) as err:
        raise WeightsError(f"{path}: not a readable Flax msgpack checkpoint ({type(err).__name__}: "
                           f"{str(err)[:200]})") from None
    if not state:
        raise WeightsError(f"{path}: no arrays in the msgpack checkpoint")
    return state


def _looks_like_msgpack(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1)
    return bool(head) and (head[0] & 0xF0 == 0x80 or head[0] in (0xDE, 0xDF))  # fixmap / map16 / map32


def _read_hf_dir(path: Path) -> Source:
    config = _read_json(path / "config.json")
    weights = next((path / n for n in HF_WEIGHT_FILES if (path / n).is_file()), None)
    if weights is None:
        raise WeightsError(f"{path}: a Hugging Face directory needs {' or '.join(HF_WEIGHT_FILES)} "
                           "beside config.json (sharded checkpoints: merge them first)")
    preprocessor = next((_read_json(path / n) for n in HF_PREPROCESSOR_FILES if (path / n).is_file()), None)
    if weights.suffix == ".safetensors":
        state, metadata = _read_safetensors(weights)
    else:
        state, _, _ = _read_torch(weights)
        metadata = {}
    return Source(path, "hf-dir", state, metadata, config, preprocessor, weights_file=weights)


def looks_like_checkpoint(path: PathLike) -> bool:
    """Whether `read_source` would take `path` by its name alone: a file of a suffix it reads, a
    Flax `checkpoint_<step>` file, or a directory with a config.json (without opening files)."""
    path = Path(path)
    if path.is_dir():
        return (path / "config.json").is_file()
    return (path.suffix.lower() in (".safetensors", ".npz", ".msgpack") + PICKLE_SUFFIXES
            or path.name.startswith("checkpoint_"))


def read_source(path: PathLike) -> Source:
    """Read a checkpoint file or Hugging Face directory; errors name the path and the problem."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _read_hf_dir(path)
        raise WeightsError(f"{path}: a directory without config.json (not a Hugging Face model directory)")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file or directory")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: empty file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state, metadata = _read_safetensors(path)
        return Source(path, "safetensors", state, metadata, weights_file=path)
    if suffix in PICKLE_SUFFIXES:
        state, container, meta = _read_torch(path)
        return Source(path, "torch", state, container=container, weights_file=path, meta=meta)
    if suffix == ".npz":
        return Source(path, "npz", _read_npz(path), weights_file=path)
    if suffix == ".msgpack" or _looks_like_msgpack(path):
        return Source(path, "msgpack", _read_msgpack(path), weights_file=path)
    raise WeightsError(f"{path}: unknown checkpoint format (expected .safetensors, .pth/.pt/.bin/.pyth, .npz, "
                       "a Flax msgpack checkpoint or a Hugging Face model directory)")
