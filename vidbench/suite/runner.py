"""Run a suite: its stages in order, each one's results written into the run directory as they
are made, a row per finished stage in ``stages.csv``, and the report at the end.

Stages (those whose section the suite has):
  dataset              generate the dataset when absent
  flops                FLOPs and params only (``count_only``): paper-size configs on any machine
  bench                FLOPs, params, peak memory, throughput (`vidbench bench`'s sweep), plus
                       inference-only ``scaling_frames``; ``requires = "cuda"`` skips it elsewhere
  e2e                  the step fed by the real loader beside the model-only and loader-only rates
                       (`vidbench bench --data`; data: [e2e] data, else the [dataset] path)
  train:<model>        train on the dataset, then a multi-view test evaluation into accuracy.csv
  ssl:random           kNN / linear probe of a random-init image backbone (the baseline)
  ssl:<method>         pretrain the image backbone with the method, evaluate it (ssl.csv)
  init:<model>:<which> the video model initialised from the best / worst SSL backbone (by linear
                       probe) or a named method, trained and evaluated like train:<model>
  published:<file>     a checkpoint of [published] weights_dir evaluated with its own preprocessing
                       and views, then measured at its own input size (inference, batch 1)
  report               report.md + report.html of the run directory

A stage that fails is recorded with its error (one that does not apply here, as skipped) and the
suite goes on. ``resume=True`` skips the
stages recorded as finished ("ok") and continues interrupted ones where they left off (the
bench sweep skips measured rows, training continues from its last epoch checkpoint).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import pandas as pd

from ..results import ResultsStore, run_lock
from .spec import Suite

__all__ = ["Stage", "StageSkipped", "finished_stages", "plan", "run_suite", "STAGES_TABLE"]

STAGES_TABLE = "stages"
PathLike = Union[str, os.PathLike]


class StageSkipped(Exception):
    """A stage that does not apply on this machine (recorded as skipped, with the reason)."""


@dataclass
class Stage:
    name: str
    run: Callable[[], str]  # returns a one-line summary


def _measured(rows: List[Dict[str, Any]], what: str) -> str:
    """A measuring stage's message: how many rows, how many failed and which models."""
    failed = [r for r in rows if r["status"] != "ok"]
    return f"{len(rows)} {what} measured, {len(failed)} failed" + (
        f" ({', '.join(sorted({r['model'] for r in failed}))})" if failed else "")


class _Run:
    """The state the stages share: the suite, the run directory, the frames for SSL."""

    def __init__(self, suite: Suite, out: Path, progress: bool):
        self.suite, self.out, self.progress = suite, out, progress
        self._frames = None

    @property
    def data(self) -> Path:
        if self.suite.dataset is None:
            raise ValueError(f"{self.suite.source}: this stage needs a [dataset] section")
        return Path(self.suite.dataset.path)

    # -- dataset -------------------------------------------------------------------------
    def dataset(self) -> str:
        from ..data import make_dataset

        spec = self.suite.dataset
        if (self.data / "dataset.json").exists() or (self.data / "train.csv").exists():
            return f"using the dataset in {self.data}"
        if not spec.generate:
            raise FileNotFoundError(f"dataset {self.data} not found and generate = false in {self.suite.source}")
        tic = time.perf_counter()
        make_dataset(self.data, **{"progress": self.progress, **spec.options})
        return f"generated {self.data} in {time.perf_counter() - tic:.1f}s"

    # -- bench ---------------------------------------------------------------------------
    def bench(self, section: str = "bench") -> str:
        from ..bench import SweepConfig, run_sweep
        from ..options import narrow

        spec = getattr(self.suite, section)
        if spec.requires and not self.suite.device.startswith(spec.requires):
            raise StageSkipped(f"[{section}] needs a {spec.requires} device; this run's device is {self.suite.device}")
        if spec.count_only:
            return self._count(spec)
        cfg = narrow(spec, SweepConfig, device=self.suite.device, threads=self.suite.threads)
        rows = run_sweep(cfg, self.out, resume=True, progress=self.progress)
        if spec.scaling_frames and "infer" in spec.mode:
            # image models have no frames axis: their one inference row is measured above, and the
            # resumed sweep skips it here
            scaling = dataclasses.replace(cfg, frames=spec.scaling_frames, mode=["infer"])
            rows += run_sweep(scaling, self.out, resume=True, progress=self.progress)
        return _measured(rows, "configurations")

    def e2e(self) -> str:
        from ..bench.e2e import E2EConfig, run_e2e
        from ..options import narrow

        spec = self.suite.e2e
        cfg = narrow(spec, E2EConfig, device=self.suite.device, threads=self.suite.threads,
                     data=spec.data or str(self.data))
        return _measured(run_e2e(cfg, self.out, resume=True, progress=self.progress), "end-to-end configurations")

    def _count(self, spec: Any) -> str:
        """FLOPs (fvcore, meta device) and params of every model x frames x image size: the sweep's
        'count' mode, rows beside the measured ones so that reports show both."""
        from ..bench.grid import COUNT, SweepConfig
        from ..bench.sweep import run_sweep
        from ..options import narrow

        cfg = narrow(spec, SweepConfig, batch_size=[1], precision=["fp32"], mode=[COUNT], device="meta")
        rows = run_sweep(cfg, self.out, resume=True, progress=self.progress)
        failed = sum(r["status"] != "ok" for r in rows)
        return f"{len(rows)} FLOP/param counts, {failed} failed"

    # -- train / init --------------------------------------------------------------------
    def train_and_eval(self, model: str, init: Optional[str] = None, tag: Optional[str] = None) -> str:
        from ..options import narrow
        from ..train import EvalConfig, TrainConfig, evaluate_checkpoint, train
        from ..train.engine import CHECKPOINT

        spec = self.suite.train
        if spec is None:
            raise ValueError(f"{self.suite.source}: training needs a [train] section")
        run_dir = self.out / "train" / (tag or model)
        epochs = spec.epochs
        if init is not None and self.suite.init is not None and self.suite.init.epochs:
            epochs = self.suite.init.epochs
        # the test evaluation goes into the suite's accuracy.csv (below), not the run directory's
        cfg = narrow(spec, TrainConfig, model=model, data=str(self.data), out=str(run_dir), epochs=epochs, init=init,
                     eval_views=None, device=self.suite.device, resume=True, progress=self.progress)
        last = train(cfg)
        views = spec.eval_views or EvalConfig.DEFAULT_VIEWS
        row = evaluate_checkpoint(run_dir / CHECKPOINT, data=str(self.data), views=views, out=str(self.out),
                                  batch_size=cfg.batch_size, num_workers=cfg.num_workers, backend=cfg.backend,
                                  bad_items=cfg.bad_items, precision=cfg.precision, device=cfg.device,
                                  progress=self.progress)
        val = f", last val top-1 {last['val_top1']:.1f}" if "val_top1" in last else ""
        return (f"{model} ({row['init']}): test top-1 {row['top1']:.1f}, static {row.get('acc_static', float('nan')):.1f}, "
                f"temporal {row.get('acc_temporal', float('nan')):.1f} ({views} views){val}")

    def init(self, model: str, which: str) -> str:
        ssl = ResultsStore(self.out).read("ssl")
        if which in ("best", "worst"):
            ok = ssl[(ssl.get("status") == "ok") & (ssl["method"] != "random")] if not ssl.empty else ssl
            ok = ok.dropna(subset=["linear_top1"]) if not ok.empty else ok
            if ok.empty:
                raise ValueError("no finished SSL method to initialise from (the ssl stages failed or did not run)")
            pick = ok.loc[ok["linear_top1"].idxmax() if which == "best" else ok["linear_top1"].idxmin()]
            method = str(pick["method"])
        else:
            method = which
        path = self.out / f"{method}.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no backbone for method {method!r} (run its ssl stage first)")
        return f"{which} = {method}: " + self.train_and_eval(model, init=str(path), tag=f"{model}_{method}")

    # -- ssl -----------------------------------------------------------------------------
    def frames(self):
        if self._frames is None:
            from ..ssl.run import open_frames

            size = self.suite.ssl.backbone_overrides.get("img_size") or 224
            self._frames = open_frames(self.data, size, frames_per_clip=self.suite.ssl.frames,
                                       progress=self.progress)
        return self._frames

    def ssl_random(self) -> str:
        from ..ssl.run import evaluate_init

        spec = self.suite.ssl
        row = evaluate_init("random", self.frames(), self.out, spec.backbone, spec.backbone_overrides,
                            knn_k=spec.knn_k, device=self.suite.device)
        return f"random init: kNN {row['knn_top1']:.1f}, linear {row['linear_top1']:.1f}"

    def ssl_method(self, method: str) -> str:
        from ..options import narrow
        from ..ssl.run import run_pretraining
        from ..ssl.train import PretrainConfig

        spec = self.suite.ssl
        cfg = narrow(spec, PretrainConfig, device=self.suite.device, progress=self.progress)
        row = run_pretraining(method, self.frames(), self.out, cfg, spec.backbone, spec.backbone_overrides,
                              spec.method_options.get(method), resume=True, knn_k=spec.knn_k)
        return f"{method}: kNN {row['knn_top1']:.1f}, linear {row['linear_top1']:.1f}, {row['pretrain_time_s']}s"

    # -- published weights ----------------------------------------------------------------
    def published_entries(self) -> List[Path]:
        """The checkpoints of [published] weights_dir: files of known suffixes, scenic's
        `checkpoint_<step>` files and Hugging Face directories."""
        spec = self.suite.published
        if not spec.weights_dir:
            raise ValueError(f"{self.suite.source}: [published] weights_dir is empty (pass --weights-dir DIR)")
        root = Path(spec.weights_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"[published] weights_dir {root} is not a directory")
        from ..weights.source import looks_like_checkpoint

        entries = sorted(p for p in root.iterdir() if looks_like_checkpoint(p))
        if not entries:
            raise ValueError(f"{root}: no checkpoints (.safetensors, .pth, .pt, .bin, .pyth, .ckpt, .npz, .msgpack, "
                             "checkpoint_<step>, or Hugging Face directories with config.json)")
        return entries

    def published(self, path: Path) -> str:
        from ..bench import SweepConfig, run_sweep
        from ..train import evaluate_weights
        from ..weights import inspect_weights

        spec = self.suite.published
        data = spec.data or (self.suite.dataset.path if self.suite.dataset else "")
        if not data:
            raise ValueError(f"{self.suite.source}: [published] needs data (pass --data TREE)")
        model = spec.models.get(path.name)
        row = evaluate_weights(str(path), data, model=model, views=spec.views, split=spec.split, out=str(self.out),
                               batch_size=spec.batch_size, num_workers=spec.num_workers, device=self.suite.device,
                               progress=self.progress)
        message = (f"{row['model']} ({row['weights']}): top-1 {row['top1']:.1f} on {row['num_videos']} videos "
                   f"({row['views']} views)")
        if row.get("published_top1") is not None:
            message += f", published {row['published_top1']:.1f}"
        if spec.bench:
            _, _, name, config = inspect_weights(path, model)
            cfg = SweepConfig(models=[name], model_kwargs=config, weights=str(path), batch_size=[1], mode=["infer"],
                              device=self.suite.device, warmup=spec.warmup, iters=spec.iters, threads=self.suite.threads)
            bench = run_sweep(cfg, self.out, resume=True, progress=False)
            if bench and bench[0]["status"] == "ok":
                message += f"; {bench[0]['gmacs']:.3g} GMACs, {bench[0]['clips_per_s']:.3g} clips/s"
            elif bench:
                message += f"; bench {bench[0]['status']}: {bench[0]['error']}"
        return message

    def report(self) -> str:
        from ..report import write_report

        md, html = write_report([self.out])
        return f"wrote {md} and {html}"


def plan(suite: Suite, out: PathLike, progress: bool = True) -> List[Stage]:
    """The stages of `suite` in order (nothing runs yet)."""
    r = _Run(suite, Path(out), progress)
    stages: List[Stage] = []
    if suite.dataset is not None:
        stages.append(Stage("dataset", r.dataset))
    if suite.flops is not None and suite.flops.models:
        stages.append(Stage("flops", lambda: r.bench("flops")))
    if suite.bench is not None and suite.bench.models:
        stages.append(Stage("bench", r.bench))
    if suite.e2e is not None and suite.e2e.models:
        stages.append(Stage("e2e", r.e2e))
    if suite.train is not None:
        stages += [Stage(f"train:{m}", (lambda m=m: r.train_and_eval(m))) for m in suite.train.models]
    if suite.ssl is not None and suite.ssl.methods:
        if suite.ssl.baseline:
            stages.append(Stage("ssl:random", r.ssl_random))
        stages += [Stage(f"ssl:{m}", (lambda m=m: r.ssl_method(m))) for m in suite.ssl.methods]
    if suite.init is not None and suite.init.model:
        stages += [Stage(f"init:{suite.init.model}:{w}", (lambda w=w: r.init(suite.init.model, w)))
                   for w in suite.init.methods]
    if suite.published is not None:
        try:
            stages += [Stage(f"published:{p.name}", (lambda p=p: r.published(p))) for p in r.published_entries()]
        except (ValueError, FileNotFoundError) as err:
            message = str(err)

            def fail() -> str:
                raise ValueError(message)

            stages.append(Stage("published", fail))
    if suite.report:
        stages.append(Stage("report", r.report))
    return stages


def finished_stages(out: PathLike) -> List[str]:
    table = ResultsStore(out).read(STAGES_TABLE)
    if table.empty:
        return []
    return list(table.loc[table["status"] == "ok", "stage"])


def run_suite(suite: Suite, out: PathLike, resume: bool = False, progress: bool = True,
              only: Optional[List[str]] = None) -> pd.DataFrame:
    """Run every stage of `suite` into `out` (see the module docstring); returns this
    invocation's stage rows. Without `resume`, a directory that already holds a suite run is
    an error (nothing is overwritten)."""
    _check_inputs(suite)  # before anything is created: a bad --data / --weights-dir leaves no run behind
    with run_lock(out, f"vidbench run --suite {suite.name}"):
        return _run_suite(suite, Path(out), resume, progress, only)


def _check_inputs(suite: Suite) -> None:
    """The inputs a suite names that exist before it runs ([published] weights_dir and data): a
    wrong one is refused before the output directory is made, not recorded as failed stages."""
    spec = suite.published
    if spec is None:
        return
    _Run(suite, Path("."), False).published_entries()  # weights_dir: a directory holding checkpoints
    data = spec.data or (suite.dataset.path if suite.dataset else "")
    if not data:
        raise ValueError(f"{suite.source}: [published] needs data (pass --data TREE)")
    if spec.data or suite.dataset is None or not suite.dataset.generate:  # else the dataset stage makes it
        from ..data import DataSpec

        if not Path(data).exists():
            raise FileNotFoundError(f"[published] data {data}: no such dataset directory (pass --data TREE)")
        DataSpec.load(data)  # a tree it can read (annotations or class folders), named if not


def _only_failures(store: ResultsStore) -> bool:
    """A directory whose suite run finished no stage and wrote nothing else (the stage table,
    environment.json and the lock only): not a run to protect, so a corrected rerun may start."""
    from ..results import LOCK_FILE

    table = store.read(STAGES_TABLE)
    if not table.empty and (table["status"] == "ok").any():
        return False
    own = {LOCK_FILE, "environment.json", f"{STAGES_TABLE}.csv"}
    return all(p.name in own for p in store.root.iterdir())


def _run_suite(suite: Suite, out: Path, resume: bool, progress: bool, only: Optional[List[str]]) -> pd.DataFrame:
    import torch

    store = ResultsStore(out)
    done = set(finished_stages(out))
    if store.path(STAGES_TABLE).exists() and not resume and _only_failures(store):
        print(f"{out}: an earlier suite run finished no stage and wrote nothing else; starting over", flush=True)
        store.path(STAGES_TABLE).unlink()
        done = set()
    if store.path(STAGES_TABLE).exists() and not resume:
        raise FileExistsError(f"{out} already holds a suite run ({len(done)} stages finished): pass --resume to "
                              "continue it, or choose another --out")
    if suite.threads:
        torch.set_num_threads(suite.threads)
    stages = plan(suite, out, progress)
    if only:
        unknown = [s for s in only if s not in {st.name for st in stages}]
        if unknown:
            raise ValueError(f"--only {unknown}: not stages of suite {suite.name} ({', '.join(s.name for s in stages)})")
        stages = [s for s in stages if s.name in only]
    def write_environment() -> None:  # stages write their own (sweep, pretrain): the suite's comes last
        store.write_environment(suite.device, {"suite": suite.name, "suite_file": suite.source,
                                               "suite_spec": dataclasses.asdict(suite)})

    write_environment()
    rows = []
    start = time.perf_counter()
    for i, stage in enumerate(stages, 1):
        head = f"[{i}/{len(stages)}] {stage.name}"
        if stage.name in done:
            print(f"{head}: done in an earlier run, skipped", flush=True)
            continue
        print(f"{head} ...", flush=True)
        tic = time.perf_counter()
        try:
            message, status = stage.run(), "ok"
        except KeyboardInterrupt:
            raise
        except StageSkipped as why:
            message, status = str(why), "skipped"
        except Exception as err:  # the suite goes on; the failure is a row with its reason
            message, status = f"{type(err).__name__}: {err}", "error"
            if os.environ.get("VIDBENCH_DEBUG"):
                traceback.print_exc()
        write_environment()
        seconds = round(time.perf_counter() - tic, 1)
        row = {"stage": stage.name, "status": status, "seconds": seconds, "message": str(message)[:1000],
               "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        store.append(STAGES_TABLE, row)
        rows.append(row)
        print(f"{head}: {status} in {seconds:.1f}s: {message}", flush=True)
    total = time.perf_counter() - start
    failed = [r["stage"] for r in rows if r["status"] == "error"]
    print(f"suite {suite.name}: {len(rows)} stages run in {total:.0f}s" + (f", failed: {', '.join(failed)}" if failed else "")
          + f"; results in {out}", flush=True)
    return pd.DataFrame(rows)
