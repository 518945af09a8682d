"""One small module per checkpoint format; importing this package registers them all.

Each module defines `sniff`, `infer` and `convert` (see `vidbench.weights.WeightsFormat`), calls
`register_format`, and registers the published checkpoints it knows with `register_published`.
Modules whose name starts with an underscore are helpers, not formats: what formats share in
logic lives there (`_util.py`, `_hf.py`). Each format module repeats the same sniff / infer /
convert / register shape and a table of `PublishedWeights` entries on purpose: that is the
registry's contract, one small self-contained module per source (STYLE.md).
"""
import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f".{_module}", __name__)
