"""Accuracy of the tiny video models on the generated dataset, trained on the CPU: the runs of
results/accuracy_cpu (docs/training.md's accuracy section), from a clone: about 1.2 hours of CPU in
all (4 to 15 minutes a run; the committed runs went two side by side on a 2-core CPU).

    python benchmarks/accuracy_cpu.py --out results/accuracy_cpu

Each run is one `vidbench train` (printed before it runs; benchmarks/_commands.py) into
OUT/<run>/ (accuracy.csv with the test row at 4 clips x 3 crops, train.csv per epoch,
environment.json), after `vidbench make-dataset --out DATA` where DATA holds no dataset. Their
test rows are gathered into OUT/accuracy.csv with the run's name and the model options it
compares (`model_options`, given explicitly even where they are today's defaults, so a changed
default cannot change a rerun). `--runs` picks some; `--epochs` caps them (a quick check:
`--videos-per-class 4 --epochs 1 --runs vivit_m2_tiny_e20 --data /tmp/acc_data --out /tmp/acc_check`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pandas as pd
from _commands import dataset_parser, ensure_dataset, vidbench

# run -> (model, epochs, threads, model options): the committed runs
RUNS: Dict[str, Tuple[str, int, int, Dict[str, float]]] = {
    "vit_frameavg_tiny_e20": ("vit_frameavg_tiny", 20, 1, {}),
    "vivit_m2_tiny_e20": ("vivit_m2_tiny", 20, 1, {"temporal_pos_std": 0}),  # the paper's init
    "vivit_m2_tiny_tpos05_e20": ("vivit_m2_tiny", 20, 1, {"temporal_pos_std": 0.5}),
    "timesformer_tiny_e20": ("timesformer_tiny", 20, 1, {"time_embed_std": 0.5}),  # the tiny default
    "timesformer_tiny_e30": ("timesformer_tiny", 30, 1, {"time_embed_std": 0.5}),
    "timesformer_tiny_e30_2threads": ("timesformer_tiny", 30, 2, {"time_embed_std": 0.5}),
    "timesformer_tiny_ref_e30": ("timesformer_tiny", 30, 1, {"time_embed_std": 0}),  # the reference init
}
# the recipe of every run (batch 16, AdamW, weight decay 0.05, label smoothing 0.1: the defaults)
RECIPE = ("--lr", "1e-3", "--warmup-epochs", "2", "--workers", "0", "--eval-views", "4x3", "--no-progress")


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = dataset_parser(__doc__, "results/accuracy_cpu")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated runs of: " + ", ".join(RUNS))
    p.add_argument("--epochs", type=int, default=None, help="cap every run's epochs (a quick check)")
    args = p.parse_args(argv)
    out, data = Path(args.out), Path(args.data)
    runs = [r for r in args.runs.split(",") if r]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        p.error(f"--runs: unknown {', '.join(unknown)}; runs are {', '.join(RUNS)}")

    ensure_dataset(data, args.videos_per_class)
    rows = []
    for run in runs:
        model, epochs, threads, options = RUNS[run]
        epochs = min(epochs, args.epochs or epochs)
        model_args = [a for k, v in options.items() for a in ("--model-arg", f"{k}={v}")]
        vidbench(["train", "--model", model, "--data", str(data), "--out", str(out / run), "--epochs", str(epochs),
                  *RECIPE, *model_args, "--resume"], threads)
        acc = pd.read_csv(out / run / "accuracy.csv")
        row = acc[acc["split"] == "test"].iloc[[-1]]
        rows.append(row.assign(run=run, model_options=json.dumps(options)))
    table = pd.concat(rows, ignore_index=True)
    first = ["run", "model", "init", "model_options"]
    table[first + [c for c in table.columns if c not in first]].to_csv(out / "accuracy.csv", index=False)
    print(f"wrote {out / 'accuracy.csv'}")


if __name__ == "__main__":
    main()
