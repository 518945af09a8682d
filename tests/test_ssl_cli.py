"""`vidbench pretrain` and `vidbench ssl-eval` end to end on a tiny image folder."""
import pandas as pd
import pytest
from _ssl_data import write_image_folder

from vidbench.checkpoint import load_backbone
from vidbench.cli import main

TINY = ["--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "quadrants", n=48)


def test_pretrain_saves_evaluates_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "--method", "byol", "--data", str(folder), "--out", str(out), "--epochs", "2", *TINY,
            "--batch-size", "16", "--proj-dim", "16", "--proj-hidden", "64", "--knn-k", "10", "--no-progress"]
    assert main(args) == 0
    assert "method=byol" in capsys.readouterr().out
    rows = pd.read_csv(out / "ssl.csv")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["status"] == "ok" and row["epochs"] == 2 and row["steps"] == 4 and row["n_train"] == 40 and row["n_eval"] == 8
    assert 0 <= row["knn_top1"] <= 100 and 0 <= row["linear_top1"] <= 100 and row["pretrain_time_s"] > 0
    assert {"emb_std", "emb_rank", "feat_rank", "eval_feat_rank"} <= set(rows.columns)
    log = pd.read_csv(out / "ssl_log.csv")
    assert list(log["epoch"]) == [1, 2] and "emb_std" in log.columns
    vit = load_backbone(out / "byol.safetensors")
    assert vit.ssl_method == "byol" and vit.ssl_extra["epochs"] == 2 and vit.config.embed_dim == 32
    assert (out / "checkpoints" / "byol.safetensors").exists() and (out / "environment.json").exists()
    assert main(args + ["--resume"]) == 0  # finished: nothing is redone
    assert len(pd.read_csv(out / "ssl.csv")) == 1 and len(pd.read_csv(out / "ssl_log.csv")) == 2


def test_ssl_eval_of_random_init_and_of_a_saved_file(folder, tmp_path):
    out = tmp_path / "eval"
    assert main(["ssl-eval", "--init", "random", "--data", str(folder), "--out", str(out), *TINY, "--knn-k", "10"]) == 0
    from vidbench.checkpoint import save_backbone
    from vidbench.models import create_model

    vit = create_model("vit_tiny", num_classes=0, img_size=16, patch_size=8, depth=1, embed_dim=32, num_heads=2)
    path = save_backbone(vit, tmp_path / "sup.safetensors", "supervised", extra={"epochs": 5})
    assert main(["ssl-eval", "--init", str(path), "--data", str(folder), "--out", str(out), "--knn-k", "10"]) == 0
    rows = pd.read_csv(out / "ssl.csv")
    assert list(rows["method"]) == ["random", "supervised"] and list(rows["epochs"]) == [0, 5]
    assert rows["knn_top1"].between(0, 100).all()


def test_options_that_do_not_apply_are_named(folder, tmp_path, capsys):
    rc = main(["pretrain", "--method", "byol", "--data", str(folder), "--out", str(tmp_path), "--w-size", "8", *TINY])
    assert rc == 2 and "byol: unknown option 'w_size'; valid options: proj_dim, proj_hidden, tau_base" in capsys.readouterr().err
    rc = main(["pretrain", "--method", "simclr", "--data", str(tmp_path / "nope"), "--out", str(tmp_path), *TINY])
    assert rc == 2 and "--data " + str(tmp_path / "nope") + ": no such directory" in capsys.readouterr().err
    videos = tmp_path / "videos"
    (videos / "train").mkdir(parents=True)
    (videos / "train.csv").write_text("path,label\n")
    rc = main(["pretrain", "--method", "simclr", "--data", str(videos), "--out", str(tmp_path), *TINY])
    assert rc == 2 and f"{videos}: no label map" in capsys.readouterr().err  # read as a video dataset


def test_singular_whitening_stops_the_command_and_records_why(folder, tmp_path, capsys):
    out = tmp_path / "wmse"
    rc = main(["pretrain", "--method", "wmse", "--data", str(folder), "--out", str(out), *TINY, "--batch-size", "16",
               "--w-size", "8", "--opt", "emb_dim=16", "--proj-hidden", "32", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "stopped: W-MSE whitening" in err and "--w-eps 1e-" in err and "use --w-size > 16" in err
    row = pd.read_csv(out / "ssl.csv").iloc[0]
    assert row["status"].startswith("stopped: W-MSE whitening")
