"""Suites are data: built-in TOML files parse and name real models; a suite file drives a whole
run (dataset, bench, train, SSL, init, report); --resume of a stopped run does no stage twice."""
import json
import textwrap

import pandas as pd
import pytest

from vidbench.cli import main
from vidbench.models import model_entry
from vidbench.suite import available_suites, load_suite, plan, run_suite
from vidbench.suite import runner as suite_runner

TINY_SUITE = """
description = "test suite"
device = "cpu"
threads = 1

[dataset]
path = "{data}"
[dataset.options]
classes = ["red_disc", "grow", "shrink"]
videos_per_class = 6
val_fraction = 0.17
test_fraction = 0.17

[bench]
models = ["vivit_m1_tiny"]
frames = [8]
batch_size = [1]
mode = ["infer"]
warmup = 0
iters = 1

[train]
models = ["vivit_m1_tiny"]
epochs = 1
batch_size = 4
eval_views = "1x1"
num_workers = 0
model_kwargs = {{ depth = 1, embed_dim = 32, num_heads = 2 }}

[ssl]
methods = ["byol", "simclr"]
backbone = "vit_tiny"
backbone_overrides = {{ img_size = 32, patch_size = 8, depth = 1, embed_dim = 32, num_heads = 2 }}
frames = 2
epochs = 1
batch_size = 8

[init]
model = "timesformer_tiny"
methods = ["best"]
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE.format(data=(tmp_path / "data").as_posix()))
    return path


def test_builtin_suites_parse_and_name_registered_models():
    assert {"quick", "paper"} <= set(available_suites())
    for name in available_suites():
        suite = load_suite(name)
        for section in (suite.flops, suite.bench):
            for model in (section.models if section else []):
                if "*" not in model:
                    model_entry(model)
        for model in (suite.train.models if suite.train else []):
            model_entry(model)
    quick = load_suite("quick")
    assert quick.device == "cpu" and quick.bench and quick.train and quick.ssl and quick.init
    assert "vit_frameavg_tiny" in quick.train.models
    names = [s.name for s in plan(quick, "unused")]
    assert names[:2] == ["dataset", "bench"] and names[-1] == "report" and "ssl:random" in names
    assert load_suite("paper").flops.count_only


def test_bad_suite_files_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[bench]\nmodels = ['vit_tiny']\nfrmes = [8]\n")
    with pytest.raises(ValueError, match=r"bad.toml \[bench\]: unknown key\(s\) frmes"):
        load_suite(bad)
    bad.write_text("[bench\n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_suite(bad)
    with pytest.raises(FileNotFoundError, match="no built-in suite 'nope'"):
        load_suite("nope")


def test_a_suite_file_drives_a_run_and_resume_does_no_stage_twice(suite_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    suite = load_suite(suite_file)
    real = suite_runner._Run.ssl_method

    def stop_at_simclr(self, method):
        if method == "simclr":
            raise KeyboardInterrupt  # the user stops the run here
        return real(self, method)

    monkeypatch.setattr(suite_runner._Run, "ssl_method", stop_at_simclr)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, progress=False)
    first = pd.read_csv(out / "stages.csv")
    assert list(first["stage"]) == ["dataset", "bench", "train:vivit_m1_tiny", "ssl:random", "ssl:byol"]
    monkeypatch.setattr(suite_runner._Run, "ssl_method", real)

    with pytest.raises(FileExistsError, match="--resume"):
        run_suite(suite, out, progress=False)
    resumed = run_suite(suite, out, resume=True, progress=False)
    assert list(resumed["stage"]) == ["ssl:simclr", "init:timesformer_tiny:best", "report"]
    stages = pd.read_csv(out / "stages.csv")
    assert stages["stage"].is_unique and (stages["status"] == "ok").all(), stages

    bench = pd.read_csv(out / "bench.csv")
    assert len(bench) == 1 and bench.loc[0, "status"] == "ok" and bench.loc[0, "gmacs"] > 0
    acc = pd.read_csv(out / "accuracy.csv")
    # trained with model_kwargs (depth 1, 32 wide): the rows name the family and config, not vivit_m1_tiny (issue 26)
    assert len(acc) == 2 and [m.split("(")[0] for m in acc["model"]] == ["vivit", "timesformer"]
    assert all("embed_dim=32" in m and "depth=1" in m for m in acc["model"]), acc["model"].tolist()
    ssl = pd.read_csv(out / "ssl.csv")
    assert sorted(ssl["method"]) == ["byol", "random", "simclr"]
    pretrained = ssl[ssl["method"] != "random"]
    best = pretrained.loc[pretrained["linear_top1"].idxmax(), "method"]  # ties: the first in suite order
    assert acc["init"].tolist() == ["random", best]
    env = json.loads((out / "environment.json").read_text())
    assert env["suite"] == "tiny" and env["suite_spec"]["ssl"]["methods"] == ["byol", "simclr"]
    report = (out / "report.md").read_text()
    assert "vivit_m1_tiny" in report and (out / "report.html").stat().st_size > 1000
    # nothing left to do: a second resume runs no stage
    assert run_suite(suite, out, resume=True, progress=False).empty


def test_a_failing_stage_is_recorded_and_the_suite_goes_on(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(f"""
        [dataset]
        path = "{(tmp_path / 'missing').as_posix()}"
        generate = false
        [flops]
        models = ["vivit_m1_tiny"]
        count_only = true
        [bench]
        requires = "cuda"
        models = ["vivit_m1_tiny"]
        [train]
        models = ["vivit_m1_tiny"]
    """))
    assert main(["run", "--suite", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    stages = pd.read_csv(tmp_path / "r" / "stages.csv").set_index("stage")
    assert stages.loc["dataset", "status"] == "error" and "generate = false" in stages.loc["dataset", "message"]
    assert stages.loc["flops", "status"] == "ok" and stages.loc["bench", "status"] == "skipped"
    assert stages.loc["train:vivit_m1_tiny", "status"] == "error" and stages.loc["report", "status"] == "ok"
    counted = pd.read_csv(tmp_path / "r" / "bench.csv")
    assert counted.loc[0, "mode"] == "count" and counted.loc[0, "gmacs"] > 0 and counted.loc[0, "params"] > 0
    assert "failed: dataset, train:vivit_m1_tiny" in capsys.readouterr().out
