"""Published checkpoints: read every supported format, convert to vidbench's models, and know
how each published checkpoint is evaluated.

    from vidbench.weights import load_pretrained
    model = load_pretrained("TimeSformer_divST_8x32_224_K400.pyth", model="timesformer_base")
    model = load_pretrained("path/to/hf-timesformer-dir")      # config.json says what it is
    model.pretrained_cfg.preprocess                            # mean, std, frames, views, ...

`create_model(name, weights=path)` (`vidbench.create_model`) and `vidbench convert` go through `load_pretrained`.
Formats are small modules in `formats/`; the published checkpoints are one table, `published.py`.
"""
from . import formats, published  # noqa: F401  (registers the formats, then the published checkpoints)
from ._registry import (
    PublishedWeights,
    WeightsFormat,
    detect_format,
    find_published,
    get_format,
    list_formats,
    list_published,
    register_format,
    register_published,
)
from .loader import WeightsInfo, check_fit, create_model, inspect_weights, load_pretrained
from .source import Source, WeightsError, read_source

__all__ = [
    "PublishedWeights", "Source", "WeightsError", "WeightsFormat", "WeightsInfo", "check_fit", "create_model", "detect_format",
    "find_published", "get_format", "inspect_weights", "list_formats", "list_published", "load_pretrained",
    "read_source", "register_format", "register_published",
]
