"""vidbench's own checkpoint: safetensors with the registry name and config in the metadata
(`vidbench.checkpoint.save_checkpoint`, `vidbench convert`). Weights keep their names."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ...checkpoint import FORMAT, json_tuples
from ...models import model_entry
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source


def _spec(source: Source) -> Dict[str, Any]:
    try:
        spec = json.loads(source.metadata.get("model", ""))
    except json.JSONDecodeError as err:
        raise source.error(f"vidbench metadata 'model' is not JSON ({err})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise source.error("vidbench metadata 'model' lacks its 'config'")
    if not spec.get("name"):
        raise source.error("vidbench checkpoint without a registry name (written by an old version?)")
    return spec


def _extra(source: Source) -> Dict[str, Any]:
    try:
        extra = json.loads(source.metadata.get("extra", "{}"))
    except json.JSONDecodeError as err:
        raise source.error(f"vidbench metadata 'extra' is not JSON ({err})") from None
    return extra if isinstance(extra, dict) else {}


def sniff(source: Source) -> bool:
    return source.kind == "safetensors" and source.metadata.get("format") == FORMAT


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    spec = _spec(source)
    try:
        model_entry(spec["name"])
    except KeyError as err:
        raise source.error(err.args[0]) from None
    return spec["name"], json_tuples(spec["config"])  # as load_checkpoint reads the same config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    return dict(source.state)


def preprocess(source: Source) -> Dict[str, Any]:
    return dict(_extra(source).get("preprocess") or {})


def class_names(source: Source) -> Optional[List[str]]:
    names = _extra(source).get("classes")
    return list(names) if isinstance(names, list) else None


FORMAT_SPEC = register_format(WeightsFormat(
    "vidbench", "vidbench's safetensors checkpoint (registry name and config in the metadata)",
    sniff, infer, convert, families=("all",), preprocess=preprocess, class_names=class_names))
