"""A property test over the whole CLI: hypothesis draws values for the numeric, list and other
value options of every command, on top of a small valid invocation of it, and every outcome must
be one of two: the command refuses in one line (exit 2, no traceback), or it runs (exit 0, or
still working when the example's few seconds are up: the values got past every check and into
the real work). A traceback, another exit code or a multi-line message fails the test with the
command line that caused it.

The invocations do real work on tiny material (a generated dataset, a tiny trained checkpoint,
tiny models); `compare` and `run` stop where their work would start (a timed multi-model
comparison and a whole suite take minutes; their jobs are tested in test_compare / test_suite).
Options naming files and folders are left out (the bad-path tests cover them: a random string
there is a folder name, not bad input), as are the process launchers (`--nproc`), which start
torchrun."""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import signal
import tempfile
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidbench.cli import build_parser, main
from vidbench.data.synthetic import make_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

# options that name files or folders, or launch processes: not values to draw
NOT_VALUES = {"--out", "--data", "--weights", "--checkpoint", "--init", "--csv", "--predict", "--suite",
              "--weights-dir", "--nproc", "--oversubscribe", "--rdzv-endpoint"}
# CI draws the same 25 examples per command each run; VIDBENCH_PROPERTY_EXAMPLES=N draws N fresh ones (a longer hunt)
EXAMPLES = int(os.environ.get("VIDBENCH_PROPERTY_EXAMPLES", 0)) or 25
FRESH = bool(os.environ.get("VIDBENCH_PROPERTY_EXAMPLES"))
SECONDS = 3  # an example still running after this got past every check: it is doing the real work

INTS = [-1, 0, 1, 2, 3, 7, 10 ** 12, 2 ** 63]
FLOATS = ["nan", "inf", "-inf", "-1.5", "0", "1e-30", "0.5", "1.5", "1e309"]
TEXTS = ["", " ", "x", "none", ",", "1,", ",2", "1,,2", "2x", "x3", "0x10", "1_000", "\u0663", "1e3", "-0", "=", "a=b"]
MODEL_KEYS = ["depth", "num_heads", "embed_dim", "patch_size", "tubelet_size", "mlp_ratio", "img_size",
              "num_frames", "num_classes", "qkv_bias", "drop_path_rate", "nope"]


def _value() -> st.SearchStrategy[str]:
    number = st.one_of(st.sampled_from(INTS), st.integers(-3, 40)).map(str)
    scalar = st.one_of(number, st.sampled_from(FLOATS), st.sampled_from(TEXTS))
    listed = st.lists(st.one_of(number, st.sampled_from(FLOATS[:4])), min_size=1, max_size=4).map(",".join)
    return st.one_of(scalar, listed)


def _key_value() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(MODEL_KEYS), _value()).map(lambda kv: f"{kv[0]}={kv[1]}")


def _options(command: str) -> List[argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [a for a in sub.choices[command]._actions
            if a.option_strings and a.nargs != 0 and not a.choices and a.help != argparse.SUPPRESS
            and not set(a.option_strings) & NOT_VALUES and "--help" not in a.option_strings]


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("cli_props")
    data = make_dataset(root / "data", ["red_disc", "green_square"], videos_per_class=3, frames=12, size=32,
                        val_fraction=0.34, test_fraction=0.0)
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(root / "run"),
                 "--epochs", "1", "--batch-size", "2", "--workers", "0", "--model-arg", "depth=1", "--model-arg",
                 "embed_dim=32", "--model-arg", "num_heads=2", "--no-progress"]) == 0
    return {"data": data, "checkpoint": root / "run" / "checkpoint.safetensors", "results": root / "run"}


TINY_BACKBONE = ["--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2"]
SMALL = ["--model-arg", "depth=1", "--model-arg", "embed_dim=32", "--model-arg", "num_heads=2"]


def _base(command: str, m: Dict[str, Path], out: Path) -> List[str]:
    """A small valid invocation of `command` (the drawn options go after it and win)."""
    data, ckpt = str(m["data"]), str(m["checkpoint"])
    return {
        "list": ["list"],
        "flops": ["flops", "vit_tiny", "--img-size", "32"],
        "bench": ["bench", "--models", "vit_tiny", "--img-size", "32", "--mode", "infer", "--iters", "1", "--warmup",
                  "0", "--no-isolate", "--no-progress", *SMALL, "--out", str(out)],
        "make-dataset": ["make-dataset", "--out", str(out), "--classes", "red_disc,grow", "--videos-per-class", "1",
                         "--frames", "4", "--img-size", "32"],
        "extract-frames": ["extract-frames", "--data", data, "--out", str(out)],
        "check-data": ["check-data", data, "--backends", "pyav", "--csv", str(out / "audit.csv")],
        "train": ["train", "--model", "vit_frameavg_tiny", "--data", data, "--out", str(out), "--epochs", "1",
                  "--batch-size", "2", "--workers", "0", "--no-progress", *SMALL],
        "eval": ["eval", "--checkpoint", ckpt, "--data", data, "--workers", "0", "--no-progress", "--out", str(out)],
        "pretrain": ["pretrain", "--method", "simclr", "--data", data, "--out", str(out), *TINY_BACKBONE, "--epochs",
                     "1", "--batch-size", "4", "--frames", "2", "--no-progress", "--no-eval"],
        "ssl-eval": ["ssl-eval", "--init", "random", "--data", data, "--out", str(out), *TINY_BACKBONE, "--frames",
                     "2", "--knn-k", "3"],
        "report": ["report", str(m["results"]), "--out", str(out)],
        "run": ["run", "--suite", "quick", "--out", str(out)],
        "convert": ["convert", ckpt, str(out / "converted.safetensors")],
        "compare": ["compare", "--out", str(out)],
    }[command]


class _StillRunning(BaseException):
    """The example's time is up: the command was doing its work (not an exception a command catches)."""


@contextlib.contextmanager
def _time_limit(seconds: int):
    def stop(signum, frame):
        raise _StillRunning()

    before = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


def _run(argv: List[str]) -> tuple:
    """(exit code or 'running', stderr) of `vidbench argv` in this process."""
    err, threads = io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), _time_limit(SECONDS):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's refusals
                code = exc.code
    except _StillRunning:
        code = "running"
    finally:
        torch.set_num_threads(threads)  # --threads must not leak into the next example
    return code, err.getvalue()


def _check(command: str, argv: List[str], code, err: str) -> None:
    shown = "vidbench " + " ".join(repr(a) if not a or " " in a else a for a in argv)
    assert "Traceback" not in err, f"{shown}\n{err}"
    assert code in (0, 2, "running"), f"{shown}: exit {code}\n{err}"
    if code == 2:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        # argparse's own refusals print their usage lines first; the message is the last line, alone
        message = [line for line in lines if not line.startswith(("usage:", " "))]
        assert len(message) == 1 and message[0].startswith(f"vidbench {command}: "), f"{shown}\n{err}"


def _reached_the_work(*args, **kwargs):
    raise _StillRunning()


def _stopping_before_work(command: str, monkeypatch) -> None:
    """`compare` and `run` stop where their (minutes-long) work starts, with what they were asked for."""
    if command == "compare":
        import vidbench.bench.compare as compare

        monkeypatch.setattr(compare, "run_compare", _reached_the_work, raising=True)
    elif command == "run":
        import vidbench.suite as suite

        monkeypatch.setattr(suite, "run_suite", _reached_the_work, raising=True)


COMMANDS = ["list", "flops", "bench", "make-dataset", "extract-frames", "check-data", "train", "eval", "pretrain",
            "ssl-eval", "report", "run", "convert", "compare"]


def test_every_command_is_drawn_from():
    from vidbench.cli import COMMANDS as ALL

    assert sorted(COMMANDS) == sorted(ALL)


@pytest.mark.parametrize("command", COMMANDS)
def test_any_option_value_is_refused_in_one_line_or_runs(command, material, monkeypatch):
    options = _options(command)
    if not options:
        pytest.skip(f"{command} has no value options")
    _stopping_before_work(command, monkeypatch)
    flags = {a.option_strings[-1]: a for a in options}
    drawn = st.dictionaries(st.sampled_from(sorted(flags)), _value(), min_size=1, max_size=3)
    key_values = st.lists(_key_value(), max_size=2)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not FRESH, database=None,
              suppress_health_check=list(HealthCheck))
    @given(drawn, key_values)
    def check(values, pairs):
        with tempfile.TemporaryDirectory() as tmp:
            argv = _base(command, material, Path(tmp) / "out")
            for flag, value in values.items():
                if flag in ("--model-arg", "--reference-arg", "--opt", "--aug"):
                    argv += [item for kv in pairs for item in (flag, kv)] or [flag, value]
                else:
                    argv += [f"{flag}={value}"]  # '=' keeps values such as '-1' from reading as flags
            code, err = _run(argv)
            _check(command, argv, code, err)

    check()


def test_the_values_drawn_reach_the_checks():
    """The pools hold what the first round found unchecked: zero, negative, nan, inf, overflow."""
    assert {0, -1, 10 ** 12} <= set(INTS) and {"nan", "inf", "1e309"} <= set(FLOATS)
    assert math.isinf(float("1e309"))
