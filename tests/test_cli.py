import subprocess
import sys

from vidbench.cli import main


def test_list_prints_zoo_table(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vivit_m2_base" in out and "115.06M" in out and "115.10M" in out
    assert "timesformer_tiny" in out


def test_list_pattern_and_no_match(capsys):
    assert main(["list", "vtn_*"]) == 0
    out = capsys.readouterr().out
    assert "vtn_base" in out and "vivit" not in out
    assert main(["list", "nothing_*"]) == 1


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "vidbench", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("vidbench ")
    # the console script is the same program: it ends through exit_process as `python -m vidbench` does
    # (under torchrun --no-python a process group's threads could otherwise abort its exit)
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "vidbench"]
    assert script.value == "vidbench.cli:run"
