"""Backbone files: a ViT and its config in safetensors, loaded back without the code that made
it, and used to initialise a video model."""
import json

import pytest
import torch
from safetensors.torch import save_file

from vidbench.checkpoint import load_backbone, load_extra_tensors, read_backbone_meta, save_backbone
from vidbench.models import create_model

TINY = dict(img_size=32, patch_size=8, depth=4, num_classes=0)


def test_round_trip_keeps_weights_config_and_metadata(tmp_path):
    vit = create_model("vit_tiny", **TINY).eval()
    path = save_backbone(vit, tmp_path / "byol.safetensors", "byol", extra={"epochs": 3},
                         extra_tensors={"head.w": torch.ones(2, 2)})
    meta = read_backbone_meta(path)
    assert meta["method"] == "byol" and meta["model_name"] == "vit_tiny" and meta["extra"] == {"epochs": 3}
    assert meta["config"]["embed_dim"] == 192 and meta["config"]["depth"] == 4
    loaded = load_backbone(path).eval()
    assert loaded.ssl_method == "byol" and loaded.config == vit.config
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), vit(x), atol=0, rtol=0)
    assert torch.equal(load_extra_tensors(path)["head.w"], torch.ones(2, 2))


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
    with pytest.raises(ValueError, match=r"other.safetensors: not a vidbench backbone"):
        load_backbone(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="junk.safetensors: not a safetensors file"):
        load_backbone(junk)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    vit = create_model("vit_tiny", **TINY)
    path = save_backbone(vit, tmp_path / "a.safetensors", "byol")
    meta = read_backbone_meta(path)
    cfg = dict(meta["config"], depth=2)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        raw = f.metadata()
    save_file(tensors, str(tmp_path / "b.safetensors"), metadata={**raw, "config": json.dumps(cfg)})
    with pytest.raises(ValueError, match=r"b.safetensors: weights do not fit.*unexpected \['blocks.2"):
        load_backbone(tmp_path / "b.safetensors")
