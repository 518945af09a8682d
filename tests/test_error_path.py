"""One error path (issue 24): a command holds no `try` that turns a built-in exception into a
message; `vidbench.cli.main` alone prints a user error (`vidbench.errors.USER_ERRORS`) as one line
with exit 2, and anything else, a bug, keeps its traceback. Every flag is generated from a job
dataclass (`vidbench.cli._options`), and the vocabulary (`vidbench.options`) names what the
library defines."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_helpers import one_line_error

from vidbench.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "vidbench"

# a command, and the library function it calls once its options are read
COMMANDS = [
    (["flops", "vit_tiny"], "vidbench.bench.count_flops"),
    (["convert", "in.safetensors", "out.safetensors"], "vidbench.weights.convert.convert_checkpoint"),
    (["ssl-eval", "--init", "random", "--data", "d", "--out", "o"], "vidbench.ssl.run.open_frames"),
    (["pretrain", "--method", "byol", "--data", "d", "--out", "o"], "vidbench.ssl.run.open_frames"),
    (["run", "--suite", "quick", "--list-stages"], "vidbench.suite.load_suite"),
    (["check-data", "tree"], "vidbench.data.spec.DataSpec.load"),
    (["extract-frames", "--data", "d", "--out", "o"], "vidbench.data.spec.DataSpec.load"),
    (["report", "r"], "vidbench.report.write_report"),
    (["bench", "--models", "vit_tiny", "--out", "o"], "vidbench.bench.run_sweep"),
    (["eval", "--weights", "w.safetensors", "--data", "d"], "vidbench.train.run_eval"),
]


def _raise(exc: BaseException):
    def broken(*args, **kwargs):
        raise exc

    return broken


@pytest.mark.parametrize("exc", [TypeError("unsupported operand"), KeyError("missing"), ValueError("bad math")],
                         ids=["TypeError", "KeyError", "ValueError"])
@pytest.mark.parametrize("argv,target", COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_a_bug_in_a_command_is_not_a_user_error(monkeypatch, argv, target, exc):
    """A built-in exception from the library (a bug) leaves main() as itself: no one-line message,
    no exit 2 (the commands caught TypeError / KeyError / ValueError and printed them)."""
    monkeypatch.setattr(target, _raise(exc))
    with pytest.raises(type(exc)):
        main(argv)


def test_a_bug_prints_its_traceback_and_exits_non_zero(tmp_path):
    """In a real process: the traceback, ending in the bug's exception, and exit status 1."""
    code = ("import sys, vidbench.bench as b\n"
            "def broken(*a, **k): raise TypeError('a bug, not a user error')\n"
            "b.count_flops = broken\n"
            "from vidbench.cli import main\n"
            "sys.exit(main(['flops', 'vit_tiny']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "TypeError: a bug, not a user error"


def test_a_user_error_is_one_line_and_exit_2(capsys):
    assert main(["flops", "no_such_model"]) == 2
    one_line_error(capsys, "vidbench flops: unknown model 'no_such_model'")


def test_library_user_errors_are_the_projects_types():
    """What the commands used to catch as built-ins now comes as the project's user errors (still
    subclasses of the built-in, for callers that catch those)."""
    from vidbench.errors import ConfigError, UnknownNameError, UnknownOptionError, UserError
    from vidbench.options import parse_key_values
    from vidbench.ssl.augment import parse_aug_overrides
    from vidbench.ssl.methods import method_config, parse_method_options

    cases = [
        (lambda: method_config("byol", wings=2), UnknownOptionError, "unknown option"),
        (lambda: method_config("dino"), UnknownNameError, "unknown self-supervised method"),
        (lambda: parse_method_options("byol", {"tau_base": "fast"}), ConfigError, "not a valid float"),
        (lambda: parse_aug_overrides(["blurr=1"]), ConfigError, "KEY one of"),
        (lambda: parse_key_values(["depth"], "--model-arg"), ConfigError, "expects KEY=VALUE"),
    ]
    for call, kind, needle in cases:
        with pytest.raises(kind, match=needle) as info:
            call()
        assert isinstance(info.value, UserError)


def test_one_key_value_parser():
    from vidbench.options import parse_key_values

    assert parse_key_values(["depth=4", "tubelet-size=2,8,8", "name=x"], "--model-arg") == \
        {"depth": 4, "tubelet_size": (2, 8, 8), "name": "x"}
    assert parse_key_values(["tau_base=0.99"], "--opt", str) == {"tau_base": "0.99"}
    found = [p for p in PACKAGE.rglob("*.py") if re.search(r"\.partition\([\"']=[\"']\)", p.read_text())]
    assert [p.relative_to(PACKAGE).as_posix() for p in found] == ["options.py"]


def test_no_hand_written_flags():
    """Every flag comes from a job dataclass through the generator: add_argument appears there only."""
    found = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                   if "add_argument(" in p.read_text())
    assert found == ["cli/_options.py"]


def test_no_command_turns_a_built_in_exception_into_a_message():
    built_in = r"except\s*\(?[^:]*\b(TypeError|KeyError|ValueError|FileNotFoundError|FileExistsError|OSError)\b"
    found = [p.name for p in (PACKAGE / "cli").glob("*_cmd.py") if re.search(built_in, p.read_text())]
    assert found == []


def test_the_vocabulary_names_what_the_library_defines():
    from vidbench import options
    from vidbench.bench.throughput import PRECISIONS
    from vidbench.data.videoio import BACKENDS

    assert options.DECODERS == tuple(BACKENDS)
    assert PRECISIONS is options.PRECISION_DTYPES  # one dtype map
    assert options.PRECISION.choices == tuple(options.PRECISION_DTYPES)
