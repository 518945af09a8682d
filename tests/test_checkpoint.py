"""Backbone files: a ViT and its config in safetensors, loaded back without the code that made
it, and used to initialise a video model."""
import json

import pytest
import torch
from safetensors.torch import save_file

from vidbench.checkpoint import load_backbone, read_backbone_meta, save_backbone
from vidbench.models import create_model

TINY = dict(img_size=32, patch_size=8, depth=4, num_classes=0)


def test_round_trip_keeps_weights_config_and_metadata(tmp_path):
    vit = create_model("vit_tiny", **TINY).eval()
    path = save_backbone(vit, tmp_path / "byol.safetensors", "byol", extra={"epochs": 3})
    meta = read_backbone_meta(path)
    assert meta["method"] == "byol" and meta["model_name"] == "vit_tiny" and meta["extra"] == {"epochs": 3, "method": "byol"}
    assert meta["config"]["embed_dim"] == 192 and meta["config"]["depth"] == 4
    loaded = load_backbone(path).eval()
    assert loaded.ssl_method == "byol" and loaded.config == vit.config
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), vit(x), atol=0, rtol=0)


def test_file_layout_is_the_shared_checkpoint_format(tmp_path):
    """The layout `vidbench train --init` reads (branch data's vidbench.checkpoint): format tag,
    the model spec (registry name, class, config class, config) and extra with the method."""
    from safetensors import safe_open

    vit = create_model("vit_tiny", **TINY)
    path = save_backbone(vit, tmp_path / "arb.safetensors", "arb", extra={"epochs": 7})
    with safe_open(str(path), framework="pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert meta["format"] == "vidbench-checkpoint/1"
    spec = json.loads(meta["model"])
    assert spec["name"] == "vit_tiny" and spec["class"] == "VisionTransformer" and spec["config_class"] == "ViTConfig"
    assert create_model(spec["name"], **spec["config"]).config == vit.config  # the spec rebuilds the model
    assert json.loads(meta["extra"]) == {"epochs": 7, "method": "arb"}
    assert keys == set(vit.state_dict())


def test_a_video_model_initialises_from_the_file(tmp_path):
    vit = create_model("vit_tiny", **TINY)
    path = save_backbone(vit, tmp_path / "simclr.safetensors", "simclr")
    video = create_model("timesformer_tiny").from_image_backbone(load_backbone(path))
    torch.testing.assert_close(video.patch_embed.proj.weight[:, :, 0], vit.patch_embed.proj.weight)  # 1-frame tubelet
    torch.testing.assert_close(video.blocks[2].block.attn.qkv.weight, vit.blocks[2].attn.qkv.weight)
    assert video(torch.randn(1, 3, 8, 32, 32)).shape == (1, 10)


def test_files_that_are_not_backbones_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone file not found"):
        load_backbone(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(1)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"other.safetensors: not a vidbench checkpoint"):
        load_backbone(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="junk.safetensors: not a safetensors file"):
        load_backbone(junk)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    vit = create_model("vit_tiny", **TINY)
    path = save_backbone(vit, tmp_path / "a.safetensors", "byol")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        raw = f.metadata()
    spec = json.loads(raw["model"])
    spec["config"]["depth"] = 2
    save_file(tensors, str(tmp_path / "b.safetensors"), metadata={**raw, "model": json.dumps(spec)})
    with pytest.raises(ValueError, match=r"b.safetensors: weights do not fit.*unexpected \['blocks.2"):
        load_backbone(tmp_path / "b.safetensors")


def test_a_checkpoint_of_another_model_is_not_an_image_backbone(tmp_path):
    vit = create_model("vit_tiny", **TINY)
    path = save_backbone(vit, tmp_path / "v.safetensors", "byol")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors, raw = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    spec = dict(json.loads(raw["model"]), **{"class": "TimeSformer", "name": "timesformer_tiny"})
    save_file(tensors, str(tmp_path / "t.safetensors"), metadata={**raw, "model": json.dumps(spec)})
    with pytest.raises(ValueError, match=r"t.safetensors: holds a TimeSformer, not an image ViT backbone"):
        load_backbone(tmp_path / "t.safetensors")
