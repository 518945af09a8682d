"""Class names of checkpoints and their match to a dataset's classes.

A checkpoint's names come from its own metadata (a Hugging Face `id2label`, vidbench metadata)
or, for published checkpoints without names (official .pyth, torchvision .pth), from the label
set of its published entry: Kinetics-400 and ImageNet-1k as torchvision ships them.
"""
from __future__ import annotations

import re
import warnings
from typing import List, Optional, Sequence, Tuple

__all__ = ["label_set", "match_classes", "normalise_name"]


def label_set(name: str) -> Optional[List[str]]:
    """The class names of a known label set ("kinetics400", "imagenet1k"), in head order."""
    from torchvision.models import _meta

    sets = {"kinetics400": "_KINETICS400_CATEGORIES", "imagenet1k": "_IMAGENET_CATEGORIES"}
    attr = sets.get(name)
    return list(getattr(_meta, attr)) if attr and hasattr(_meta, attr) else None


def normalise_name(name: str) -> str:
    """Spelling-insensitive class name: lower case, '_' / '-' / quotes / brackets as spaces."""
    return " ".join(re.sub(r"[_\-\"'()\[\]]", " ", str(name).lower()).split())


def match_classes(model_names: Optional[Sequence[str]], model_classes: int, data_names: Sequence[str],
                  where: str = "") -> Tuple[List[int], str]:
    """For each dataset class, the index of the model's class with that name.

    By name where both sides have names (the dataset may be a subset of the model's classes: a
    prediction outside it counts as wrong, as on the full set); by index, with a warning, where
    the model has no names and the counts agree; otherwise a ValueError naming what is missing.
    Returns (index per dataset class, how they were matched).
    """
    if model_names:
        lookup = {}
        for i, n in enumerate(model_names):
            lookup.setdefault(normalise_name(n), i)
        missing = [n for n in data_names if normalise_name(n) not in lookup]
        if missing:
            raise ValueError(f"{where}{len(missing)} of the dataset's {len(data_names)} classes are not among the "
                             f"checkpoint's {len(model_names)} class names: {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}")
        return [lookup[normalise_name(n)] for n in data_names], f"by name ({len(data_names)} of {model_classes})"
    if model_classes == len(data_names):
        warnings.warn(f"{where}the checkpoint has no class names: matching its {model_classes} classes to the "
                      "dataset's by index", stacklevel=2)
        return list(range(model_classes)), "by index (checkpoint has no class names)"
    raise ValueError(f"{where}the checkpoint has {model_classes} unnamed classes and the dataset {len(data_names)}: "
                     "cannot match them (give the checkpoint's class names, or fine-tune with vidbench train --weights)")
