"""What the failure tests assert of a refused command: one line on stderr, no traceback."""
from __future__ import annotations


def one_line_error(capsys, *needles: str) -> str:
    """The command's stderr is one line holding every one of `needles`, and no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err
