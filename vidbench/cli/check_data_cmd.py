"""vidbench check-data TREE: audit a dataset's videos and annotations before training on it.

The audit is `vidbench.data.audit` (rows, a summary); this command writes the rows to a CSV as
they come, shows a progress bar and prints the summary table. Exit 0: no problem that would
corrupt training or evaluation (warnings allowed); 1: such problems (the CSV names them); 2: bad
input (no dataset, unreadable annotations, a backend that does not work here)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import List, Optional

from ..options import DECODERS, FRAMES, PROGRESS, WORKERS, Alias, option
from ._options import add_options, config_from_args


@dataclass
class CheckDataConfig:
    data: str = option("", positional="1", metavar="TREE", help="dataset directory, in any layout --data reads")
    csv: str = option("check_data.csv", help="per-file CSV, written as the audit goes")
    splits: List[str] = option(default_factory=list, flag="split", help="splits to audit [every split]")
    backends: List[str] = option(default_factory=list, choices=DECODERS,
                                 help="decoders to open each file with and compare [every one that works here]")
    sample_frames: int = option(4, positive=True, help="frames per file each backend decodes (the last included)")
    frames: Optional[int] = FRAMES(help="clip frames: clips shorter than the sampler needs are errors [not checked "
                                        "unless --frames, --stride or --sampling is given]", aliases=())
    stride: Optional[int] = option(None, aliases=[Alias("sampling_rate", deprecated=False)],
                                   help="frame stride of dense sampling, mmaction2's sampling_rate [the dataset's]")
    sampling: Optional[str] = option(None, choices=("dense", "uniform"), help="clip sampling [the dataset's]")
    num_workers: int = WORKERS(0, help="worker processes (0: in this process)")
    progress: bool = PROGRESS(help="progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-data", help="audit a dataset's videos and labels before training (CSV + summary)",
                       description=__doc__.split("\n\n", 1)[1].replace("\n", " "))
    add_options(p, CheckDataConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import csv
    import time

    from tqdm import tqdm

    from ..data.audit import COLUMNS, DUPLICATE_KEYS, AuditSummary, audit_files, cross_file_rows, plan_audit
    from ..data.build import clip_settings
    from ..data.spec import DataSpec
    from ..data.videoio import available_backends, check_backend

    config = config_from_args(CheckDataConfig, args)
    for backend in config.backends:
        check_backend(backend)  # one line, exit 2, for a backend asked for that does not work here
    backends = list(dict.fromkeys(config.backends)) or available_backends()
    spec = DataSpec.load(config.data)
    span = None
    if config.frames is not None or config.stride is not None or config.sampling is not None:
        span = clip_settings(spec, config.frames, config.stride, config.sampling)[0].span
    tic = time.perf_counter()
    plan = plan_audit(spec, config.splits, backends, config.sample_frames, span)
    summary = AuditSummary(len(plan.jobs))
    hashes = []  # what the duplicate search needs of each file's row, not the whole row
    with open(config.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for row in plan.rows:
            writer.writerow(row)
            summary.add(row)
        bar = tqdm(total=len(plan.jobs), desc="check-data", unit="file", disable=not config.progress)
        for row in audit_files(plan.jobs, config.num_workers):
            writer.writerow(row)
            f.flush()
            summary.add(row)
            hashes.append({k: row[k] for k in DUPLICATE_KEYS})
            bar.update()
        bar.close()
        for row in cross_file_rows(hashes):
            writer.writerow(row)
            summary.add(row)
    summary.seconds = time.perf_counter() - tic
    print(format_summary(summary, backends, config.csv))
    return 1 if summary.failed else 0


def format_summary(summary, backends: List[str], csv_path: str) -> str:
    """The summary table: problem kinds (rows naming each), formats, speed, verdict."""
    from ..data.audit import PROBLEMS

    lines = [f"{'problem':24s} {'severity':8s} {'rows':>6s}  meaning"]
    for kind, (severity, meaning) in PROBLEMS.items():
        if summary.problems[kind]:
            lines.append(f"{kind:24s} {severity:8s} {summary.problems[kind]:6d}  {meaning}")
    if not summary.problems:
        lines.append("(none)")
    lines += ["", f"{'codec/container':24s} {'files':>6s}"]
    lines += [f"{name:24s} {count:6d}" for name, count in summary.formats.most_common()]
    verdict = (f"FAILED: {summary.errors} row(s) with errors would corrupt training or evaluation"
               if summary.failed else "OK: nothing that would corrupt training or evaluation")
    lines += ["", f"{summary.files} files in {summary.seconds:.1f} s ({summary.files / max(summary.seconds, 1e-9):.1f} files/s; backends "
              f"{', '.join(backends)}); {summary.warnings} row(s) with warnings only; rows in {csv_path}", verdict]
    return "\n".join(lines)
