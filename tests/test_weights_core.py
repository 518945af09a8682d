"""The published-weights loader's own guarantees, independent of any one format: strict loading
with named keys and shapes, a file checked against its declared config before anything large is
allocated, nothing unpickled, embeddings resized and a head replaced only when asked, class
names matched by name."""
import json

import pytest
import torch
from _weights_helpers import Marker, perturb_, write_liar_checkpoint
from safetensors.torch import save_file

import vidbench
from vidbench.checkpoint import FORMAT, save_checkpoint
from vidbench.models import create_model
from vidbench.weights import WeightsError, list_formats, load_pretrained
from vidbench.weights.classes import label_set, match_classes


def _saved(tmp_path, name="vivit_m1_tiny", **extra):
    model = perturb_(create_model(name))
    path = tmp_path / f"{name}.safetensors"
    save_checkpoint(model, path, extra)
    return model.eval(), path


def test_every_format_is_registered():
    formats = set(list_formats())
    assert {"vidbench", "torchvision-mvit"} <= formats


def test_native_round_trip_and_create_model_weights(tmp_path):
    model, path = _saved(tmp_path, classes=[f"c{i}" for i in range(10)])
    x = torch.randn(1, 3, 8, 32, 32)
    for loaded in (load_pretrained(path), vidbench.create_model("vivit_m1_tiny", weights=str(path))):
        assert not loaded.training
        assert loaded.pretrained_cfg.format == "vidbench"
        assert loaded.pretrained_cfg.class_names == [f"c{i}" for i in range(10)]
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


def test_head_of_another_class_count_is_replaced_and_said(tmp_path):
    model, path = _saved(tmp_path)
    loaded = load_pretrained(path, num_classes=3)
    assert loaded.num_classes == 3
    assert any("head dropped" in n for n in loaded.pretrained_cfg.notes)
    torch.testing.assert_close(loaded.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)


def test_frames_and_size_resize_the_position_embedding(tmp_path):
    model, path = _saved(tmp_path)
    loaded = load_pretrained(path, num_frames=16, img_size=48)
    assert loaded.pos_embed.shape == (1, 1 + 8 * 36, 192)
    assert any("pos_embed resized" in n for n in loaded.pretrained_cfg.notes)
    same = load_pretrained(path, num_frames=8, img_size=32)  # no change asked: no resize, equal weights
    torch.testing.assert_close(same.pos_embed, model.pos_embed)
    assert same.pretrained_cfg.notes == []


def test_requesting_another_family_names_the_file(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(WeightsError, match=r"vivit_m1_tiny.safetensors.*vivit.*not timesformer_tiny"):
        load_pretrained(path, model="timesformer_tiny")


def test_declared_config_is_checked_against_the_tensors_before_allocation(tmp_path):
    """Metadata claiming a huge model (embed_dim 8192, depth 64: ~50 GB) over tiny tensors is
    refused from the header and shapes alone: the real model is never built."""
    path = write_liar_checkpoint(tmp_path / "liar.safetensors", create_model("vit_tiny", img_size=32, patch_size=8,
                                                                              depth=2))
    with pytest.raises(WeightsError, match=r"liar.safetensors.*do not fit.*missing .*shape mismatch"):
        load_pretrained(path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    model, path = _saved(tmp_path, name="vit_tiny")
    state = model.state_dict()
    state["blocks.0.extra.weight"] = torch.zeros(2)
    del state["blocks.1.mlp.fc2.bias"]
    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(bad),
              metadata={"format": FORMAT, "model": json.dumps({"name": "vit_tiny", "config": {}}), "extra": "{}"})
    with pytest.raises(WeightsError, match=r"missing 1 key\(s\): blocks.1.mlp.fc2.bias.*unexpected 1 key\(s\): "
                                           r"blocks.0.extra.weight"):
        load_pretrained(bad)


def test_non_finite_weights_are_refused(tmp_path):
    model = create_model("vit_tiny", depth=1)
    with torch.no_grad():
        model.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_checkpoint(model, path)
    with pytest.raises(WeightsError, match=r"nan.safetensors: non-finite.*blocks.0.mlp.fc1.weight"):
        load_pretrained(path)


@pytest.mark.parametrize("suffix", [".pth", ".pyth", ".bin", ".safetensors"])
def test_a_crafted_pickle_is_never_executed(tmp_path, suffix):
    marker = tmp_path / "executed"
    path = tmp_path / f"evil{suffix}"
    torch.save({"model_state": {"w": torch.zeros(1)}, "payload": Marker(marker)}, path)
    with pytest.raises(WeightsError, match=f"evil{suffix}"):
        load_pretrained(path)
    assert not marker.exists()


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"just some text", "unknown checkpoint format"),
    (b"\x00\x00\x00\x00\x00\x00\x00\x10{\"a\":", "not a readable safetensors"),
])
def test_unreadable_files_get_one_clear_error(tmp_path, content, match):
    suffix = ".safetensors" if content.startswith(b"\x00") else ".weights"
    path = tmp_path / f"file{suffix}"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match) as err:
        load_pretrained(path)
    assert str(path) in str(err.value)


def test_truncated_checkpoints_are_named(tmp_path):
    _, path = _saved(tmp_path, name="vit_tiny")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cut.safetensors"):
        load_pretrained(cut)
    pth = tmp_path / "cut.pth"
    torch.save(create_model("vit_tiny", depth=1).state_dict(), pth)
    pth.write_bytes(pth.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="cut.pth: not a readable PyTorch checkpoint"):
        load_pretrained(pth)


def test_a_file_in_no_known_layout(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.layer.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match=r"other.pth: no known checkpoint layout.*encoder.layer.weight"):
        load_pretrained(path)
    with pytest.raises(WeightsError, match="unknown weights format 'nope'"):
        load_pretrained(path, format="nope")


def test_class_names_match_by_name_subset_and_index():
    k400 = label_set("kinetics400")
    assert len(k400) == 400 and k400[0] == "abseiling"
    index, how = match_classes(k400, 400, ["Air_Drumming", "abseiling"])
    assert index == [1, 0] and how.startswith("by name")
    with pytest.warns(UserWarning, match="by index"):
        assert match_classes(None, 2, ["a", "b"])[0] == [0, 1]
    with pytest.raises(ValueError, match="not among the checkpoint's"):
        match_classes(["a", "b"], 2, ["a", "zebra"])
    with pytest.raises(ValueError, match="3 unnamed classes and the dataset 2"):
        match_classes(None, 3, ["a", "b"])


def test_published_entries_by_name_and_cache_folder_never_by_a_borrowed_name(tmp_path):
    from pathlib import Path

    from vidbench.weights import find_published

    hf_cache = Path("/cache/hub/models--facebook--timesformer-base-finetuned-k400/snapshots/0123abcd")
    assert find_published(hf_cache).name == "timesformer_base.k400_hf"
    assert find_published(Path("x/mvit_v2_s-ae3be167.pth")).model == "mvitv2_s_16x4"
    from test_mvit import _tv_tiny  # torchvision's MViT with mvit_tiny's layout

    path = tmp_path / "mvit_v2_s-ae3be167.pth"  # a tiny model saved under a published file name
    torch.save(perturb_(_tv_tiny(2)).state_dict(), path)
    loaded = load_pretrained(path, model="mvit_tiny")
    assert loaded.pretrained_cfg.published is None and loaded.pretrained_cfg.preprocess_source == "model defaults"


def test_a_wrong_weights_format_names_file_format_key_and_detected_format(tmp_path, capsys):
    """Issue item 9: a forced format that does not fit the file was a bare key (`vidbench convert:
    model.patch_embed.proj.weight`); now one line with the file, the format asked for, what it
    lacked and what auto-detection makes of the file."""
    timm = pytest.importorskip("timm", reason="timm is in the test extra")
    from vidbench.cli import main

    path = tmp_path / "vit_tiny_timm.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, num_classes=5).state_dict(), path)
    for forced in ("timesformer-official", "videoswin-official", "torchvision-mvit", "hf-videomae"):
        assert main(["convert", str(path), str(tmp_path / "out.safetensors"), "--weights-format", forced]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("vidbench convert: ") and "Traceback" not in err
        assert str(path) in err and forced in err and "looks like timm-vit" in err, err
        if forced != "hf-videomae":  # the ones that failed on a lookup name the key they looked for
            assert "no key '" in err, err
        with pytest.raises(WeightsError, match=f"{forced}.*timm-vit"):
            load_pretrained(path, format=forced)
