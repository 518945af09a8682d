"""vidbench ViT-B/16 vs timm vit_base_patch16_224 inference throughput and MFU, same process.

    python benchmarks/compare_timm.py --batch-size 8 --threads 2 [--out results/timm_compare_cpu/timm_vit.json]

A thin wrapper over vidbench.bench.timm_compare.compare_timm_vit (itself `vidbench compare vit_base`,
inference only, in the one-JSON form of results/timm_compare_cpu; call it from a notebook).
With --out, environment.json (versions, commit, CPU, this command) is written beside the JSON."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vidbench

from vidbench.bench.timm_compare import compare_timm_vit  # noqa: E402
from vidbench.results import ResultsStore  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    args = p.parse_args()
    result = compare_timm_vit(args.batch_size, args.precision, args.device, args.warmup, args.iters, args.rounds,
                              args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        ResultsStore(Path(args.out).parent).write_environment(
            args.device, {"benchmark": "compare_timm", "argv": ["benchmarks/compare_timm.py", *sys.argv[1:]]})


if __name__ == "__main__":
    main()
