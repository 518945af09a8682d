"""Training and evaluation end to end on a tiny generated dataset (a few seconds each)."""
import json

import pandas as pd
import pytest
import torch

from vidbench.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from vidbench.cli import main
from vidbench.data import make_dataset
from vidbench.models import VisionTransformer, ViTConfig
from vidbench.train import TrainConfig, evaluate_checkpoint, train

SMALL = {"depth": 1, "temporal_depth": 1, "embed_dim": 48, "num_heads": 2}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two appearance classes and one temporal pair, 24 videos each (18 train / 2 val / 4 test)."""
    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square", "grow", "shrink"],
                        videos_per_class=24, val_fraction=0.084, test_fraction=0.167)


def _cfg(data, out, **kw):
    base = dict(model="vivit_m2_tiny", data=str(data), out=str(out), epochs=5, batch_size=8, lr=1e-3,
                warmup_epochs=0.5, num_workers=0, model_kwargs=SMALL, progress=False)
    return TrainConfig(**{**base, **kw})


def test_train_learns_and_eval_writes_accuracy_rows(tiny_data, tmp_path):
    out = tmp_path / "run"
    last = train(_cfg(tiny_data, out, eval_views="2x3"))
    log = pd.read_csv(out / "train.csv")
    assert list(log["epoch"]) == [1, 2, 3, 4, 5]
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0] - 0.2  # the loss falls
    test = last["test"]
    assert test["num_videos"] == 16 and test["views"] == "2x3"
    # 4 classes, chance 25%: within a few steps the model at least tells the static pair from the
    # temporal pair (50%); telling red from green or grow from shrink takes a longer run
    assert log["train_acc"].iloc[-1] >= 50 and test["top1"] >= 50
    rows = pd.read_csv(out / "accuracy.csv")
    for column in ("model", "init", "data", "views", "epochs", "top1", "top5", "acc_static", "acc_temporal",
                   "skipped_items", "train_time_s"):
        assert column in rows.columns
    assert rows.iloc[0]["init"] == "random" and rows.iloc[0]["epochs"] == 5 and rows.iloc[0]["skipped_items"] == 0
    # the CLI evaluates the checkpoint again: the same numbers, one more row
    assert main(["eval", "--checkpoint", str(out / "checkpoint.safetensors"), "--views", "2x3", "--workers", "0",
                 "--no-progress"]) == 0
    rows = pd.read_csv(out / "accuracy.csv")
    assert len(rows) == 2 and rows.iloc[1]["top1"] == pytest.approx(rows.iloc[0]["top1"])
    model, extra = load_checkpoint(out / "checkpoint.safetensors")
    assert extra["epoch"] == 5 and extra["clip"] == {"num_frames": 8, "stride": 2, "mode": "dense", "size": 32}
    assert model.num_classes == 4


def test_resume_continues_exactly(tiny_data, tmp_path, monkeypatch):
    """2 epochs straight == killed after epoch 1, then --resume (optimizer, schedule, RNG, data)."""
    import vidbench.train.core as core

    straight = train(_cfg(tiny_data, tmp_path / "a", epochs=2))
    assert straight["epoch"] == 2
    real_save = core.save_train_state

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the epoch-1 checkpoint

    monkeypatch.setattr(core, "save_train_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_data, tmp_path / "b", epochs=2))
    monkeypatch.setattr(core, "save_train_state", real_save)
    resumed = train(_cfg(tiny_data, tmp_path / "b", epochs=2, resume=True))
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-6)
    assert list(pd.read_csv(tmp_path / "b" / "train.csv")["epoch"]) == [1, 2]
    a, _ = load_checkpoint(tmp_path / "a" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name


def test_init_from_an_image_checkpoint(tiny_data, tmp_path):
    """--init builds the video model to the image ViT's config and records the method."""
    vit = VisionTransformer(ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=0))
    path = save_checkpoint(vit, tmp_path / "byol.safetensors", {"method": "byol"})
    out = tmp_path / "init"
    train(_cfg(tiny_data, out, epochs=1, model="timesformer_tiny", model_kwargs={}, init=str(path)))
    model, extra = load_checkpoint(out / "checkpoint.safetensors")
    assert (model.config.embed_dim, model.config.depth, model.config.num_heads) == (32, 1, 2)
    assert extra["init"] == "byol"
    spec, _ = read_metadata(path)
    assert spec["class"] == "VisionTransformer"
    not_vit = save_checkpoint(model, tmp_path / "video.safetensors")
    with pytest.raises(ValueError, match="expected an image ViT checkpoint"):
        train(_cfg(tiny_data, tmp_path / "x", epochs=1, init=str(not_vit)))


def test_bad_items_are_skipped_counted_and_reported(tiny_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    train_csv = data / "train.csv"
    lines = train_csv.read_text().splitlines()
    (data / "videos" / "broken.mp4").write_bytes(b"\x00" * 100)
    lines += ["videos/broken.mp4,grow", "videos/nowhere.mp4,grow", lines[1].rsplit(",", 1)[0] + ",unknown_class"]
    train_csv.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as record:
        last = train(_cfg(data, tmp_path / "run", epochs=1))
    messages = " ".join(str(w.message) for w in record)
    assert "broken.mp4" in messages and f"train.csv:{len(lines) - 1}: video file not found" in messages
    assert f"train.csv:{len(lines)}: label 'unknown_class'" in messages
    assert last["skipped_items"] == 3
    with pytest.raises(Exception, match="annotation problem"):
        train(_cfg(data, tmp_path / "strict", epochs=1, bad_items="raise"))


def test_checkpoint_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a vidbench checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_metadata(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        evaluate_checkpoint(str(tmp_path / "none.safetensors"))


def test_cli_make_dataset_and_train(tmp_path, capsys):
    data = tmp_path / "d"
    assert main(["make-dataset", "--out", str(data), "--classes", "red_disc,green_square",
                 "--videos-per-class", "4", "--frames", "15", "--img-size", "32", "--seed", "1"]) == 0
    assert json.loads((data / "dataset.json").read_text())["generator"]["frames"] == 15
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--batch-size", "4", "--workers", "0", "--model-arg", "depth=1",
                 "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2", "--no-progress"]) == 0
    assert '"epoch": 1' in capsys.readouterr().out


def test_no_weight_decay_on_norms_biases_tokens_and_embeddings():
    from vidbench.models import create_model
    from vidbench.train.engine import param_groups

    model = create_model("timesformer_tiny", depth=1)
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    named = dict(model.named_parameters())
    for name in ("time_embed", "pos_embed", "cls_token", "norm.weight", "head.bias"):
        assert id(named[name]) in ids, name
    for name in ("patch_embed.proj.weight", "head.weight"):
        assert id(named[name]) not in ids, name
    assert len(decay["params"]) + len(no_decay["params"]) == len(named)


@pytest.mark.parametrize("name", ["mvit_tiny", "vtn_tiny", "vivit_m4_tiny"])
def test_checkpoint_round_trip_rebuilds_every_family(name, tmp_path):
    """Configs with derived fields (MViT's per-block list) rebuild from the checkpoint alone."""
    from vidbench.models import create_model

    model = create_model(name, num_classes=3).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"epoch": 1})
    again, extra = load_checkpoint(path)
    x = torch.randn(1, *model.input_size)
    assert extra == {"epoch": 1} and torch.equal(model(x), again.eval()(x))
