"""`vidbench flops` and `vidbench bench` from the command line."""
from vidbench.cli import main


def test_flops_command(capsys):
    assert main(["flops", "vivit_m2_tiny", "--frames", "16", "--crosscheck", "--max-depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "input 3x16x32x32" in out and "GMACs:" in out and "1 MAC = 1 FLOP" in out
    assert "| module" in out and "temporal_blocks" in out
    assert "torch FlopCounterMode (halved)" in out
    assert "UNCOUNTED ops (no FLOP handle; may hide real arithmetic): none" in out


def test_flops_command_compares_with_the_paper(capsys):
    assert main(["flops", "vit_base", "--max-depth", "0"]) == 0
    assert "published: 17.6 GMACs" in capsys.readouterr().out


def test_flops_command_bad_input(capsys):
    assert main(["flops", "vit_tiny", "--frames", "8"]) == 2
    assert "num_frames" in capsys.readouterr().err
    assert main(["flops", "vivit_m9_tiny"]) == 2
    assert "did you mean" in capsys.readouterr().err

