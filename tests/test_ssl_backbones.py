"""Published self-supervised ViT backbones in their own layouts (issue 23): DINO, MAE, MoCo v3 and
DINOv2 (layer scale, register tokens), loaded through `vidbench.weights` and equal to timm's model
(every weight perturbed, both kernel paths, pooled pre-logits features and every token, 1e-4).

timm builds the reference at a tiny config. The official packages (dino, mae, moco-v3, dinov2) do
not install from PyPI beside this torch (dinov2 0.0.1.dev2 pins torch 2.0 and xformers; the others
are not packaged), so each official layout is written here from timm's state dict, re-keyed as the
official code saves it (main_dino.py's save_dict, main_pretrain.py's, main_moco.py's, the DINOv2
hub's `_pretrain.pth`), with the official pickled bookkeeping (argparse args, optimizer state).
"""
import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

timm = pytest.importorskip("timm", reason="timm is in the test extra: pip install -e .[test]")

from _weights_helpers import assert_same_logits, perturb_  # noqa: E402
from timm.models.vision_transformer import VisionTransformer as TimmViT  # noqa: E402
from timm.models.vision_transformer import checkpoint_filter_fn  # noqa: E402

from vidbench.models import create_model  # noqa: E402
from vidbench.weights import WeightsError, detect_format, load_pretrained, read_source  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=0)
TINY14 = dict(img_size=56, patch_size=14, embed_dim=48, depth=2, num_heads=3, num_classes=0, init_values=1e-5)


def timm_vit(seed: int = 0, **kw) -> TimmViT:
    torch.manual_seed(seed)
    return perturb_(TimmViT(**{**TINY, **kw}), seed=seed).eval()


def images(size: int = 32, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


class Tokens(torch.nn.Module):
    """forward = forward_features: every token after the final norm."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_features(x)


def assert_equal_to_timm(ours, ref, size: int) -> float:
    """Pooled pre-logits features and every token, on both kernel paths."""
    x = images(size)
    pooled = assert_same_logits(ours, ref, x)
    tokens = assert_same_logits(Tokens(ours), ref.forward_features, x)
    return max(pooled, tokens)


def _args() -> argparse.Namespace:
    return argparse.Namespace(arch="vit_small", patch_size=16, lr=0.0005, epochs=100)


def _head(prefix: str, width: int):
    return {f"{prefix}mlp.0.weight": torch.randn(64, width), f"{prefix}mlp.0.bias": torch.randn(64),
            f"{prefix}last_layer.weight_g": torch.randn(256, 1), f"{prefix}last_layer.weight_v": torch.randn(256, 64)}


# ---- writers: timm's state dict in each official layout -------------------------------------------


def dino_backbone(ref, path):  # dino_deitsmall16_pretrain.pth: the teacher backbone, no prefix, no head
    torch.save(ref.state_dict(), path)


def dino_full(ref, path):  # main_dino.py save_dict: teacher (not DDP-wrapped for a ViT) and student (DDP)
    state, width = ref.state_dict(), ref.embed_dim
    teacher = {**{f"backbone.{k}": v for k, v in state.items()}, **_head("head.", width)}
    student = {**{f"module.backbone.{k}": v + 1 for k, v in state.items()}, **_head("module.head.", width)}
    torch.save({"student": student, "teacher": teacher, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
                "epoch": 100, "args": _args(), "dino_loss": {"center": torch.zeros(1, 256)}}, path)


def mae_backbone(ref, path):  # mae_pretrain_vit_base.pth: {'model': encoder}
    torch.save({"model": ref.state_dict()}, path)


def mae_full(ref, path):  # main_pretrain.py checkpoint-N.pth: the encoder beside the decoder
    width, dec = ref.embed_dim, 32
    decoder = {"mask_token": torch.randn(1, 1, dec), "decoder_embed.weight": torch.randn(dec, width),
               "decoder_embed.bias": torch.randn(dec), "decoder_pos_embed": torch.randn(1, 17, dec),
               "decoder_blocks.0.norm1.weight": torch.randn(dec), "decoder_norm.weight": torch.randn(dec),
               "decoder_pred.weight": torch.randn(8 * 8 * 3, dec), "decoder_pred.bias": torch.randn(8 * 8 * 3)}
    torch.save({"model": {**ref.state_dict(), **decoder}, "optimizer": {"state": {}}, "epoch": 799,
                "scaler": {"scale": 65536.0}, "args": _args()}, path)


def mocov3(ref, path):  # main_moco.py: DDP MoCo_ViT, base / momentum encoders with a projection head, predictor
    state, width = ref.state_dict(), ref.embed_dim
    proj = {"head.0.weight": torch.randn(64, width), "head.1.weight": torch.randn(64), "head.1.running_mean":
            torch.zeros(64), "head.3.weight": torch.randn(32, 64)}
    sd = {**{f"module.base_encoder.{k}": v for k, v in {**state, **proj}.items()},
          **{f"module.momentum_encoder.{k}": v + 1 for k, v in {**state, **proj}.items()},
          "module.predictor.0.weight": torch.randn(64, 32)}
    torch.save({"epoch": 300, "arch": "vit_base", "state_dict": sd, "optimizer": {"state": {}}, "scaler": {}}, path)


def dinov2(ref, path):  # the hub's dinov2_vit*14[_reg4]_pretrain.pth
    state = dict(ref.state_dict())
    if "reg_token" in state:  # timm folds the class row into cls_token (no_embed_class): unfold it
        row = torch.randn(1, 1, ref.embed_dim)
        state["register_tokens"] = state.pop("reg_token")
        state["cls_token"] = state["cls_token"] - row
        state["pos_embed"] = torch.cat([row, state["pos_embed"]], dim=1)
    state["mask_token"] = torch.randn(1, ref.embed_dim)
    torch.save(state, path)


CASES = {
    # name: (writer, timm kwargs, format detected, load kwargs)
    "dino_backbone": (dino_backbone, {}, "timm-vit", {}),
    "dino_full": (dino_full, {}, "dino-official", {}),
    "mae_backbone": (mae_backbone, {}, "timm-vit", {}),
    "mae_full": (mae_full, {}, "mae-official", {}),
    "mocov3": (mocov3, dict(embed_dim=384, num_heads=12, depth=1, patch_size=16), "mocov3-official", {}),
    "dinov2": (dinov2, TINY14, "dinov2-official", {}),
    "dinov2_reg4": (dinov2, dict(TINY14, reg_tokens=4, no_embed_class=True), "dinov2-official", {}),
    "timm_dinov2": (lambda ref, p: torch.save(ref.state_dict(), p), TINY14, "timm-vit", {}),
    "timm_dinov2_reg4": (lambda ref, p: torch.save(ref.state_dict(), p), dict(TINY14, reg_tokens=4, no_embed_class=True),
                         "timm-vit", {}),
    "timm_reg_with_rows": (lambda ref, p: torch.save(ref.state_dict(), p), dict(TINY14, reg_tokens=2), "timm-vit", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layout_loads_equal_to_timm(tmp_path, case):
    writer, kw, fmt, load_kw = CASES[case]
    ref = timm_vit(**kw)
    path = tmp_path / f"{case}.pth"
    writer(ref, path)
    assert detect_format(read_source(path)).name == fmt
    heads = {} if case in ("mocov3",) or case.startswith("dinov2") and ref.embed_dim in (384, 768) else \
        {"num_heads": ref.blocks[0].attn.num_heads}
    ours = load_pretrained(path, **heads, **load_kw)
    cfg = ours.config
    assert ours.num_classes == 0 and cfg.num_heads == ref.blocks[0].attn.num_heads
    assert cfg.reg_tokens == ref.num_reg_tokens
    assert (cfg.init_values is not None) == ("init_values" in kw)
    diff = assert_equal_to_timm(ours, ref, cfg.img_size)
    print(f"{case} ({fmt}): max |diff| {diff:.2e}")


def test_dino_full_checkpoint_takes_the_teacher(tmp_path):
    ref = timm_vit()
    dino_full(ref, tmp_path / "ckpt.pth")
    ours = load_pretrained(tmp_path / "ckpt.pth", num_heads=3)
    torch.testing.assert_close(ours.pos_embed, ref.pos_embed, rtol=0, atol=0)  # the student's is + 1


def test_mocov3_base_encoder_with_twelve_heads_at_small_width(tmp_path):
    """MoCo v3's vit_small has 12 heads (vits.py), DeiT-S 6: the format knows its own."""
    ref = timm_vit(embed_dim=384, num_heads=12, depth=1, patch_size=16)
    mocov3(ref, tmp_path / "vit-s-300ep.pth.tar")
    assert load_pretrained(tmp_path / "vit-s-300ep.pth.tar").config.num_heads == 12


@pytest.mark.parametrize("key,what", [
    ("module.base_encoder.patch_embed.proj.0.weight", "conv-stem"),
    ("module.queue", "not known"),
])
def test_mocov3_refuses_what_it_cannot_compute(tmp_path, key, what):
    ref = timm_vit()
    mocov3(ref, tmp_path / "m.pth.tar")
    obj = torch.load(tmp_path / "m.pth.tar", weights_only=True)
    obj["state_dict"][key] = torch.zeros(3)
    torch.save(obj, tmp_path / "m.pth.tar")
    with pytest.raises(WeightsError, match=what):
        load_pretrained(tmp_path / "m.pth.tar", num_heads=3)


def test_dinov2_swiglu_is_refused(tmp_path):
    ref = timm_vit(**TINY14)
    dinov2(ref, tmp_path / "g.pth")
    state = torch.load(tmp_path / "g.pth", weights_only=True)
    state["blocks.0.mlp.w12.weight"] = torch.zeros(4, 4)
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(WeightsError, match="SwiGLU"):
        load_pretrained(tmp_path / "g.pth", num_heads=3)


# ---- position embeddings at another input size --------------------------------------------------


def _official_interpolate(pos: torch.Tensor, side: int, offset: float, antialias: bool) -> torch.Tensor:
    """dinov2/models/vision_transformer.py `interpolate_pos_encoding`, as written there."""
    n = pos.shape[1] - 1
    m = int(n ** 0.5)
    kwargs = {"scale_factor": ((side + offset) / m, (side + offset) / m)} if offset else {"size": (side, side)}
    patch = F.interpolate(pos[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2), mode="bicubic",
                          antialias=antialias, **kwargs)
    return torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])], dim=1)


@pytest.mark.parametrize("reg", [0, 4])
def test_dinov2_position_embedding_interpolated_as_the_hub_model(tmp_path, reg):
    """The hub models at 56 px (4 x 4 positions) run at 42 px (3 x 3) and 98 px (7 x 7): without
    registers offset 0.1 and no antialiasing, with them antialiasing to the size (hub backbones.py)."""
    ref = timm_vit(**TINY14, **(dict(reg_tokens=4, no_embed_class=True) if reg else {}))
    dinov2(ref, tmp_path / "d.pth")
    official = torch.load(tmp_path / "d.pth", weights_only=True)["pos_embed"]
    for size in (42, 98):
        ours = load_pretrained(tmp_path / "d.pth", num_heads=3, img_size=size)
        want = _official_interpolate(official, size // 14, 0.0 if reg else 0.1, antialias=bool(reg))
        torch.testing.assert_close(ours.pos_embed.detach(), want, rtol=0, atol=1e-6)
        assert any("pos_embed resized 17 -> " in n for n in ours.pretrained_cfg.notes)
    plain = _official_interpolate(official, 3, 0.0, antialias=False)
    assert not torch.allclose(plain, _official_interpolate(official, 3, 0.1, antialias=False), atol=1e-4)


def test_timm_dinov2_resized_as_timm(tmp_path):
    ref = timm_vit(**TINY14, reg_tokens=4, no_embed_class=True)
    torch.save(ref.state_dict(), tmp_path / "t.pth")
    ours = load_pretrained(tmp_path / "t.pth", num_heads=3, img_size=42)
    theirs = TimmViT(**{**TINY14, "reg_tokens": 4, "no_embed_class": True, "img_size": 42}).eval()
    theirs.load_state_dict(checkpoint_filter_fn(ref.state_dict(), theirs))
    assert_equal_to_timm(ours, theirs, 42)


# ---- the ViT's new parts -------------------------------------------------------------------------


def test_layer_scale_and_registers_are_state():
    vit = create_model("vit_tiny", **{**TINY, "init_values": 0.5, "reg_tokens": 2})
    keys = set(vit.state_dict())
    assert {"reg_token", "blocks.0.ls1.gamma", "blocks.1.ls2.gamma"} <= keys
    assert float(vit.blocks[0].ls1.gamma[0].detach()) == 0.5 and vit.num_prefix_tokens == 3
    assert vit.pos_embed.shape[1] == 1 + 16  # registers have no position row
    assert vit.forward_features(images()).shape == (2, 3 + 16, 48)
    plain = create_model("vit_tiny", **TINY)
    assert not any("ls1" in k or "reg_token" in k for k in plain.state_dict())
    with pytest.raises(ValueError, match="reg_tokens"):
        create_model("vit_tiny", **{**TINY, "reg_tokens": -1})


def test_registers_are_left_out_of_average_pooling():
    vit = create_model("vit_tiny", **{**TINY, "class_token": False, "global_pool": "avg", "reg_tokens": 2}).eval()
    with torch.no_grad():
        tokens = vit.forward_features(images())
        torch.testing.assert_close(vit(images()), tokens[:, 2:].mean(1))


# ---- paper sizes on the meta device --------------------------------------------------------------

SIZES = json.loads((Path(__file__).with_name("paper_tables.json")).read_text())["ssl_backbones"]


@pytest.mark.parametrize("name", sorted(k for k in SIZES if not k.startswith("_")))
def test_backbone_parameter_counts(name):
    """vidbench's backbone (no head) has timm's parameter count for the same weights, on meta."""
    entry = SIZES[name]
    with torch.device("meta"):
        ours = create_model(entry["model"], **{**entry["overrides"], "num_classes": 0})
        theirs = timm.create_model(entry["timm"], pretrained=False, num_classes=0)
    count = sum(p.numel() for p in ours.parameters())
    assert sum(p.numel() for p in theirs.parameters()) == entry["params"]
    assert count == entry["params"] + entry.get("extra", 0), count


# ---- use: ssl-eval (kNN and linear probe on video frames) and train --init ------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from vidbench.data import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square"], videos_per_class=6,
                        val_fraction=0.34, test_fraction=0.0)


def test_ssl_eval_takes_published_layouts_beside_a_backbone_trained_here(videos, tmp_path, capsys):
    import pandas as pd

    from vidbench.checkpoint import save_backbone
    from vidbench.cli import main

    dino = tmp_path / "dino_full.pth"
    dino_full(timm_vit(), dino)
    reg = tmp_path / "dinov2_reg.pth"
    dinov2(timm_vit(**TINY14, reg_tokens=4, no_embed_class=True), reg)
    here = save_backbone(create_model("vit_tiny", **TINY), tmp_path / "here.safetensors", "byol", extra={"epochs": 3})
    out = tmp_path / "eval"
    common = ["--data", str(videos), "--out", str(out), "--frames", "2", "--knn-k", "5", "--num-heads", "3"]
    for init, extra in ((dino, []), (reg, ["--img-size", "42"]), (here, [])):
        assert main(["ssl-eval", "--init", str(init), *common, *extra]) == 0, capsys.readouterr().err
    rows = pd.read_csv(out / "ssl.csv")
    assert list(rows["method"]) == ["dino_full.pth", "dinov2_reg.pth", "byol"]
    assert list(rows["weights_format"].fillna("")) == ["dino-official", "dinov2-official", ""]
    assert list(rows["img_size"]) == [32, 42, 32] and rows["knn_top1"].between(0, 100).all()
    assert rows["linear_top1"].between(0, 100).all() and (rows["n_train"] > 0).all()
    assert json.loads(rows["input_mean"][0]) == [0.485, 0.456, 0.406]  # vidbench.weights' preprocessing, recorded
    assert "pos_embed resized 17 -> 10" in rows["weights_notes"][1]


def _train(videos, out, model, init, *extra):
    from vidbench.cli import main

    return main(["train", "--model", model, "--data", str(videos), "--out", str(out), "--init", str(init),
                 "--epochs", "1", "--batch-size", "4", "--workers", "0", "--frames", "2", "--no-progress", *extra])


def test_train_init_from_a_published_layout_records_its_preprocessing(videos, tmp_path, capsys):
    """DINOv2 with registers and layer scale into the frame average, which carries both: every
    weight arrives (the trained model's first-frame features equal the image ViT's before training
    is not checked here: test_image_init does; here the weights and the recorded preprocessing)."""
    from vidbench.checkpoint import load_checkpoint

    ref = timm_vit(**{**TINY14, "img_size": 28, "embed_dim": 192, "depth": 1}, reg_tokens=4, no_embed_class=True)
    path = tmp_path / "dinov2_reg.pth"
    dinov2(ref, path)
    assert _train(videos, tmp_path / "run", "vit_frameavg_tiny", path, "--lr", "1e-12", "--min-lr", "0") == 0, capsys.readouterr().err
    assert "--init: dinov2-official backbone, preprocessing from model defaults" in capsys.readouterr().out
    model, extra = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert (model.config.reg_tokens, model.config.init_values, model.config.patch_size) == (4, 1e-5, 14)
    assert extra["clip"]["mean"] == [0.485, 0.456, 0.406] and extra["init"] == "dinov2_reg.pth"
    torch.testing.assert_close(model.vit.blocks[0].ls2.gamma, ref.blocks[0].ls2.gamma)  # lr 1e-12: as loaded
    torch.testing.assert_close(model.vit.reg_token, ref.reg_token)


@pytest.mark.parametrize("model,kw,part", [
    ("timesformer_tiny", TINY14, "layer scale (init_values=1e-05)"),
    ("vivit_m1_tiny", dict(reg_tokens=2), "register tokens (reg_tokens=2)"),
])
def test_train_init_refuses_a_part_the_video_model_cannot_carry(videos, tmp_path, capsys, model, kw, part):
    path = tmp_path / "ssl.pth"
    size = 28 if kw.get("patch_size") == 14 else 32
    torch.save(timm_vit(**{**kw, "img_size": size, "embed_dim": 192, "depth": 1}).state_dict(), path)
    assert _train(videos, tmp_path / "run", model, path) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and part in err and "would be dropped" in err, err


@pytest.mark.parametrize("model", ["timesformer_tiny", "vivit_m1_tiny", "vivit_m2_tiny", "vivit_m3_tiny",
                                   "vivit_m4_tiny", "vtn_tiny", "videomae_tiny", "vit_frameavg_tiny"])
def test_every_image_initialised_model_takes_a_dino_checkpoint(tmp_path, model):
    """`train --init`'s model building (engine.build_model) from DINO's full checkpoint: the blocks
    the video model copies are the teacher backbone's."""
    from vidbench.train import TrainConfig
    from vidbench.train.engine import build_model, load_image_backbone

    heads = 4 if model == "vivit_m4_tiny" else 3  # Model 4 splits the heads in two
    ref = timm_vit(embed_dim=192, num_heads=heads,
                   **({"class_token": False, "global_pool": "avg", "fc_norm": False} if model == "vivit_m3_tiny" else {}))
    path = tmp_path / "dino.pth"
    (mae_backbone if model == "vivit_m3_tiny" else dino_full)(ref, path)
    cfg = TrainConfig(model=model, out=str(tmp_path / "o"), init=str(path))
    image = load_image_backbone(str(path))
    if heads != 3:  # the heads are not in any shape (192 wide: 3 by default)
        image = (load_pretrained(path, num_heads=heads), image[1])
    video, label, follow = build_model(cfg, 3, 4, 32, image=image)
    assert follow["embed_dim"] == 192 and follow["num_heads"] == heads and label == "dino.pth"
    blocks = video.backbone.blocks if model == "vtn_tiny" else video.vit.blocks if model == "vit_frameavg_tiny" \
        else video.blocks
    mlp = blocks[1].block.mlp if model == "timesformer_tiny" and hasattr(blocks[1], "block") else blocks[1].mlp
    torch.testing.assert_close(mlp.fc2.weight, ref.blocks[1].mlp.fc2.weight, rtol=0, atol=0)


def test_a_released_dinov2_file_gets_its_published_entry(tmp_path):
    """A ViT-S/14 file at its released shapes (zeros: only names and shapes matter here), named as
    the hub names it: the published entry's preprocessing applies, and at the entry's 224 crop its
    37 x 37 positions are interpolated by DINOv2's rule."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in create_model("vit_small_dinov2").state_dict().items()}
    state = {k: torch.zeros(s) for k, s in shapes.items()}
    state["mask_token"] = torch.zeros(1, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    model = load_pretrained(path, img_size=224)
    info = model.pretrained_cfg
    assert info.published.name == "vit_small_dinov2.official" and info.published.top1 == 81.1
    assert (info.preprocess["crop_size"], info.preprocess["resize_size"]) == (224, 256)
    assert info.preprocess["mean"] == [0.485, 0.456, 0.406] and model.config.num_heads == 6
    assert any("1370 -> 257" in n and "DINOv2" in n for n in info.notes), info.notes
