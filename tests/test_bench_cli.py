"""`vidbench flops` and `vidbench bench` from the command line."""
import pandas as pd

from vidbench.cli import main


def test_flops_command(capsys):
    assert main(["flops", "vivit_m2_tiny", "--frames", "16", "--crosscheck", "--max-depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "input 3x16x32x32" in out and "GMACs:" in out and "1 MAC = 1 FLOP" in out
    assert "| module" in out and "temporal_blocks" in out
    assert "torch FlopCounterMode (halved)" in out and "without norms" in out
    assert "UNCOUNTED ops (no FLOP handle; may hide real arithmetic): none" in out


def test_flops_command_compares_with_the_paper(capsys):
    assert main(["flops", "vit_base", "--max-depth", "0"]) == 0
    assert "published: 17.6 GMACs" in capsys.readouterr().out


def test_flops_command_bad_input(capsys):
    assert main(["flops", "vit_tiny", "--frames", "8"]) == 2
    assert "num_frames" in capsys.readouterr().err
    assert main(["flops", "vivit_m9_tiny"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_bench_command(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["bench", "--models", "vivit_m*_tiny", "--batch-size", "1", "--mode", "infer", "--warmup", "0",
            "--iters", "1", "--threads", "1", "--no-isolate", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "clips/s" in text and "1 MAC = 1 FLOP" in text
    assert len(pd.read_csv(out / "bench.csv")) == 4
    assert main(args) == 2 and "--resume" in capsys.readouterr().err  # never mixes runs silently
    assert main(args + ["--resume"]) == 0
    assert len(pd.read_csv(out / "bench.csv")) == 4
    assert main(["bench", "--models", "nope_*", "--out", str(tmp_path / "x")]) == 2
    assert "matches no" in capsys.readouterr().err
