"""`python -m vidbench.bench.worker`: measure one configuration in this fresh process.

Reads a JSON job on stdin, {"measure": `measure`'s keyword arguments (`sweep.measure_args`),
"threads": N}, and prints one line `VIDBENCH_RESULT {json}` with the row (status "ok", or "oom"
/ "error" with the message)."""
from __future__ import annotations

import json
import sys

import torch

from ..checkpoint import _tuples
from .measure import measure
from .sweep import RESULT_PREFIX, _is_oom, error_text


def main() -> int:
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(int(job["threads"]))
    try:
        row = {"status": "ok", **measure(**_tuples(job["measure"]), fresh_process=True)}
    except Exception as exc:
        row = {"status": "oom" if _is_oom(exc) else "error", "error": error_text(exc)}
    print(RESULT_PREFIX + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
