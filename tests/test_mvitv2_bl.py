"""MViTv2-B (32x3 at 224) and MViTv2-L (40x3 at 312) as registry configs of vidbench's MViT.

The reference is mmaction2's own `MViT` backbone (its arch 'base' / 'large', a port of SlowFast's
MViTv2 with the same relative-position interpolation; SlowFast itself is not on the package
registry): paper sizes map shape for shape on the meta device, and B- and L-shaped models at
CPU width (same block counts and pooling positions, 8 / 12 channels) give mmaction2's logits,
perturbed, on both kernel paths, loaded through the mmaction2 and SlowFast layouts. MViTv2-L's
312 px halves to odd grids (78 -> 39 -> 20 -> 10): its relative-position tables are sized from
the floored grid and interpolated, as SlowFast's and mmaction2's are; a 40 px L-shaped clip
exercises the same path."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_
from test_weights_mmaction2 import _clip, _head, _mmaction_backbone, _save

from vidbench.models import create_model
from vidbench.weights import detect_format, load_pretrained, read_source
from vidbench.weights.formats.mmaction2 import mmaction2_to_slowfast_mvit
from vidbench.weights.formats.slowfast_mvit import slowfast_mvit_to_vidbench

pytestmark = pytest.mark.usefixtures("one_thread")

# mmaction2's arch_zoo entries (mmaction/models/backbones/mvit.py) at CPU width
BASE_LIKE = {"embed_dims": 8, "num_layers": 24, "num_heads": 1, "downscale_indices": [2, 5, 21]}
LARGE_LIKE = {"embed_dims": 12, "num_layers": 48, "num_heads": 2, "downscale_indices": [2, 8, 44]}


def _vidbench_state(backbone: torch.nn.Module, dim: int) -> dict:
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["cls_head.fc_cls.weight"] = torch.empty(400, dim, device=next(iter(state.values())).device)
    state["cls_head.fc_cls.bias"] = torch.empty(400, device=state["cls_head.fc_cls.weight"].device)
    return slowfast_mvit_to_vidbench(mmaction2_to_slowfast_mvit(state))


@pytest.mark.parametrize("name,arch,frames,size,dim", [("mvitv2_b_32x3", "base", 32, 224, 768),
                                                       ("mvitv2_l_40x3", "large", 40, 312, 1152)])
def test_paper_size_maps_shape_for_shape_onto_mmaction2(name, arch, frames, size, dim):
    """Every tensor of mmaction2's MViT(arch) at the published clip, renamed by the converters, has
    our model's shape and nothing is left over: the relative-position tables included (L: 155, 77,
    37 and 17 rows in space where its pooled grids span 155, 77, 39 and 19 offsets)."""
    mod = _mmaction_backbone("mvit")
    with torch.device("meta"):
        theirs = _vidbench_state(mod.MViT(arch=arch, spatial_size=size, temporal_size=frames), dim)
        ours = create_model(name)
    mine = ours.state_dict()
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in mine.items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(v.numel() for v in theirs.values())
    resized = sorted({b.shape for n, b in ours.named_buffers() if "rel_pos_resize" in n})
    if arch == "base":  # 224 halves exactly: no table is interpolated
        assert resized == [] and ours.config.blocks[-1].grid_out == (16, 7, 7)
    else:
        assert ours.config.blocks[-1].grid_out == (20, 10, 10)
        assert resized == [torch.Size([19, 17]), torch.Size([39, 37])]


def test_odd_grids_are_refused_unless_asked_for():
    with pytest.raises(ValueError, match=r"image height 312 is not a multiple of 32.*odd_grids=True"):
        create_model("mvitv2_b_32x3", img_size=312, num_frames=40)
    model = create_model("mvitv2_b_32x3", img_size=40, num_frames=4, embed_dim=8, odd_grids=True)
    assert [b.grid_out for b in model.config.blocks][-1] == (2, 2, 2)


def _reference(tmp_path: Path, arch: dict, frames: int, size: int, seed: int):
    mod = _mmaction_backbone("mvit")
    torch.manual_seed(seed)
    backbone = perturb_(mod.MViT(arch=arch, spatial_size=size, temporal_size=frames), seed=seed).eval()
    head = _head(arch["embed_dims"] * 8, seed)
    path = _save(tmp_path / "mvit.pth", backbone, head)
    return path, (lambda x: head(backbone(x)[-1][1])), backbone


@pytest.mark.parametrize("which,arch,frames,size", [("mvitv2_b_32x3", BASE_LIKE, 4, 32),
                                                    ("mvitv2_l_40x3", LARGE_LIKE, 4, 40)])
def test_same_logits_as_mmaction2_through_both_layouts(tmp_path, which, arch, frames, size):
    """B-shaped at 4x32 (exact halving) and L-shaped at 4x40 (grids 10 -> 5 -> 3 -> 2: stage 3 and 4
    tables interpolated): mmaction2's logits from its own checkpoint layout and from SlowFast's."""
    path, reference, backbone = _reference(tmp_path, arch, frames, size, seed=3)
    assert detect_format(read_source(path)).name == "mmaction2"
    model = load_pretrained(path)
    cfg = model.config
    assert model.model_name == which and cfg.embed_dim == arch["embed_dims"] and cfg.num_heads == arch["num_heads"]
    assert (cfg.num_frames, tuple(cfg.img_size)) == (frames, (size, size))
    assert cfg.odd_grids == (size == 40)
    x = _clip(frames, size)
    diff = assert_same_logits(model, reference, x)
    print(f"mmaction2 {which}-shaped: max |diff| {diff:.2e}")
    # SlowFast's layout (its .pyth: {"model_state": ...}), written by the mmaction2 -> SlowFast renames
    state = torch.load(str(path), weights_only=True)["state_dict"]
    torch.save({"model_state": mmaction2_to_slowfast_mvit(state), "epoch": 1}, tmp_path / "sf.pyth")
    assert detect_format(read_source(tmp_path / "sf.pyth")).name == "slowfast-mvit"
    sf = load_pretrained(tmp_path / "sf.pyth")
    assert sf.model_name == which and sf.config.odd_grids == cfg.odd_grids
    diff = assert_same_logits(sf, reference, x)
    print(f"slowfast {which}-shaped: max |diff| {diff:.2e}")


def test_interpolated_tables_are_the_reference_interpolation():
    """The resize buffer applied to a table is F.interpolate(..., mode='linear') of it (SlowFast's
    get_rel_pos and mmaction2's resize_decomposed_rel_pos)."""
    model = create_model("mvitv2_l_40x3", img_size=40, num_frames=4, embed_dim=12, num_classes=3).eval()
    attn = model.blocks[8].attn  # first block of stage 3: grids 5 -> 3, table 3 rows for 5 offsets
    assert tuple(attn.rel_pos_h.shape) == (3, 6) and attn.grid_q == (2, 3, 3)
    want = torch.nn.functional.interpolate(attn.rel_pos_h.detach().T[None], size=5, mode="linear")[0].T
    torch.testing.assert_close(attn._table("h").detach(), want, rtol=0, atol=1e-6)


def test_published_entries():
    from vidbench.weights import find_published, list_published

    entries = {e.name: e for e in list_published() if e.model in ("mvitv2_b_32x3", "mvitv2_l_40x3")}
    assert set(entries) == {"mvitv2_b_32x3.k400_slowfast", "mvitv2_l_40x3.k400_slowfast",
                            "mvitv2_b_32x3.k400_mmaction2", "mvitv2_l_40x3.k400_mmaction2"}
    sf_b, sf_l = entries["mvitv2_b_32x3.k400_slowfast"], entries["mvitv2_l_40x3.k400_slowfast"]
    assert (sf_b.top1, sf_b.top5, sf_b.num_frames, sf_b.sampling_rate, sf_b.views, sf_b.gmacs) == (
        82.9, 95.7, 32, 3, (5, 1), 225.0)
    assert (sf_l.top1, sf_l.top5, sf_l.num_frames, sf_l.crop_size, sf_l.resize_size, sf_l.views, sf_l.mean) == (
        86.1, 97.0, 40, 312, 312, (5, 3), (0.485, 0.456, 0.406))
    mm_l = entries["mvitv2_l_40x3.k400_mmaction2"]
    assert (mm_l.top1, mm_l.crop_size, mm_l.views, mm_l.mean, mm_l.gmacs) == (85.4, 312, (5, 3), (0.45,) * 3, 2828.0)
    assert entries["mvitv2_b_32x3.k400_mmaction2"].overrides == {}
    assert find_published(Path("MViTv2_L_40x3_k400_f306903192.pyth")).name == "mvitv2_l_40x3.k400_slowfast"
    with torch.device("meta"):
        for entry in entries.values():
            model = create_model(entry.model, **entry.overrides)
            assert model.input_size[1:] == (entry.num_frames, entry.crop_size, entry.crop_size), entry.name
