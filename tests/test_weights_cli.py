"""Published weights end to end on the CPU: a Kinetics-style tree (train/ and val/ class folders,
no test/) of generated clips, small checkpoints saved in their native formats, and every command
that takes --weights; the published-models suite over checkpoints in three formats."""
import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidbench.checkpoint import save_checkpoint
from vidbench.cli import main
from vidbench.data.synthetic import make_dataset
from vidbench.models import create_model

transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
pytest.importorskip("torchvision.models.video.mvit")

from _weights_helpers import perturb_  # noqa: E402
from test_mvit import _tv_tiny  # noqa: E402

CLASSES = ["move_left", "move_right", "grow"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Kinetics layout: <split>/<class>/<video>.mp4 for train and val only."""
    root = tmp_path_factory.mktemp("kinetics")
    gen = make_dataset(root / "gen", CLASSES, videos_per_class=6)
    out = root / "tree"
    for split, dst in (("train", "train"), ("val", "val"), ("test", "val")):
        with open(gen / f"{split}.csv") as f:
            for r in csv.DictReader(f):
                folder = out / dst / r["label"]
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(gen / r["path"], folder / Path(r["path"]).name)
    return out


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A small Hugging Face TimeSformer with the tree's class names (in another order)."""
    cfg = transformers.TimesformerConfig(image_size=32, patch_size=8, num_frames=8, hidden_size=48,
                                         num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
                                         num_labels=3, id2label={0: "grow", 1: "move left", 2: "move right"},
                                         label2id={"grow": 0, "move left": 1, "move right": 2})
    torch.manual_seed(0)
    model = perturb_(transformers.TimesformerForVideoClassification(cfg)).eval()
    path = tmp_path_factory.mktemp("weights") / "hf_timesformer"
    model.save_pretrained(path)
    return path


def _rows(path):
    return pd.read_csv(path)


def test_eval_with_weights_on_a_kinetics_tree(tree, hf_dir, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["eval", "--weights", str(hf_dir), "--data", str(tree), "--out", str(out), "--views", "2x3",
                 "--workers", "0", "--no-progress"]) == 0
    assert "no test split: evaluating the val split" in capsys.readouterr().out
    row = _rows(out / "accuracy.csv").iloc[-1]
    assert row["split"] == "val" and row["num_videos"] == 6 and row["views"] == "2x3"
    assert row["weights_format"] == "hf-timesformer" and row["model"].startswith("timesformer")
    assert row["class_match"].startswith("by name (3 of 3)")
    assert row["num_frames"] == 8 and row["crop_size"] == 32 and 0 <= row["top1"] <= 100


def test_bench_flops_convert_and_train_take_weights(tree, hf_dir, tmp_path, capsys):
    ref_params = sum(p.numel() for p in transformers.TimesformerForVideoClassification.from_pretrained(hf_dir).parameters())
    assert main(["bench", "--weights", str(hf_dir), "--out", str(tmp_path / "b"), "--mode", "infer", "--iters", "1",
                 "--warmup", "0", "--no-isolate", "--no-progress"]) == 0
    bench = _rows(tmp_path / "b" / "bench.csv").iloc[0]
    assert bench["status"] == "ok" and bench["weights"] == str(hf_dir) and bench["params"] == ref_params
    # a 48-wide checkpoint is not the paper's model: the row names its family and config, `arch` what it was built from
    assert bench["model"].startswith("timesformer(") and "embed_dim=48" in bench["model"], bench["model"]
    assert bench["arch"] == "timesformer_base"
    conv = tmp_path / "converted.safetensors"
    assert main(["convert", str(hf_dir), str(conv)]) == 0
    assert main(["convert", str(hf_dir), str(conv)]) == 2  # never overwritten silently
    assert "already exists" in capsys.readouterr().err
    assert main(["flops", "--weights", str(conv)]) == 0
    assert f"params: {ref_params:,}" in capsys.readouterr().out
    out = tmp_path / "ft"
    assert main(["train", "--weights", str(conv), "--data", str(tree), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--workers", "0", "--eval-views", "1x1", "--no-progress"]) == 0
    train = _rows(out / "accuracy.csv").iloc[-1]
    assert train["init"] == "weights:converted.safetensors" and train["split"] == "val"


def test_bad_weights_are_one_line_errors(tree, tmp_path, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x80\x04not really a pickle")
    assert main(["eval", "--weights", str(junk), "--data", str(tree), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidbench eval: ") and str(junk) in err and "Traceback" not in err
    other = tmp_path / "vit.safetensors"
    save_checkpoint(create_model("vit_tiny", depth=1), other)
    assert main(["eval", "--weights", str(other), "--model", "mvit_tiny", "--data", str(tree), "--no-progress"]) == 2
    assert "holds a vit checkpoint" in capsys.readouterr().err


def test_published_suite_over_three_formats(tree, hf_dir, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copytree(hf_dir, weights / "hf_timesformer")
    mvit = perturb_(_tv_tiny(1))  # torchvision's MViT with mvit_tiny's layout: a .pth state dict
    mvit.head[1] = torch.nn.Linear(192, 3)
    torch.save(mvit.state_dict(), weights / "mvit.pth")
    vit = perturb_(create_model("vit_frameavg_tiny", num_classes=3))
    save_checkpoint(vit, weights / "frameavg.safetensors", {"classes": ["grow", "move_right", "move_left"]})
    (weights / "notes.txt").write_text("not a checkpoint: ignored")
    suite = tmp_path / "pub.toml"
    suite.write_text(f'device = "cpu"\n[published]\nweights_dir = "{weights}"\ndata = "{tree}"\nviews = "1x1"\n'
                     'num_workers = 0\niters = 1\nwarmup = 0\n[published.models]\n"mvit.pth" = "mvit_tiny"\n')
    out = tmp_path / "run"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--no-progress"]) == 0
    stages = _rows(out / "stages.csv")
    assert sorted(stages["stage"]) == ["published:frameavg.safetensors", "published:hf_timesformer",
                                       "published:mvit.pth", "report"]
    assert (stages["status"] == "ok").all()
    report = (out / "report.md").read_text()
    section = report.split("## Published weights")[1].split("\n## ")[0]
    for name in ("hf_timesformer", "mvit.pth", "frameavg.safetensors"):
        assert name in section
    bench = _rows(out / "bench.csv")
    assert len(bench) == 3 and set(bench["mode"]) == {"infer"}
