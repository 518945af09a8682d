"""MViT checkpoints from SlowFast, pytorchvideo and torchvision: each layout, written from a
perturbed torchvision `MViT` (mvit_tiny's layout, v1 and v2), loads through `load_pretrained`
into vidbench's MViT with the same logits as torchvision's; paper sizes map shape for shape on
the meta device; what vidbench cannot hold, or must not unpickle, is refused by name."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_
from test_mvit import _tv_tiny as _tv_tiny_layout

from vidbench.models import create_model
from vidbench.weights import (
    Source,
    WeightsError,
    detect_format,
    find_published,
    get_format,
    list_published,
    load_pretrained,
    read_source,
)
from vidbench.weights.formats.pytorchvideo_mvit import pytorchvideo_mvit_to_vidbench
from vidbench.weights.formats.slowfast_mvit import slowfast_mvit_to_vidbench

tv_mvit = pytest.importorskip("torchvision.models.video.mvit", reason="torchvision is in the test extra")

pytestmark = pytest.mark.usefixtures("one_thread")

State = Dict[str, torch.Tensor]


def _tv_tiny(version: int) -> torch.nn.Module:
    """torchvision's MViT with mvit_tiny's layout (tests/test_mvit.py's), every weight perturbed."""
    return perturb_(_tv_tiny_layout(version), seed=version).eval()


# test-side key map, torchvision's MViT -> SlowFast's MViT (slowfast/models/video_model_builder.py,
# attention.py): the stem conv is patch_embed.proj; the positional tables are (1, N, C) parameters
# of the model (torchvision keeps flat ones in pos_encoding); torchvision's Pool(conv, norm) pairs
# are SlowFast's attn.pool_X (the conv) and attn.norm_X; attn.project.0 -> attn.proj; the MLP's
# Sequential indices 0 / 3 -> fc1 / fc2; the block's widening Linear project -> proj; head.1 ->
# head.projection. The fused qkv rows are [q; k; v] in both; SlowFast's separate q / k / v
# (MVIT.SEPARATE_QKV, and SlowFast from July 2021 to MViTv2) are those three row blocks.
_TV_TO_SLOWFAST = [
    (".attn.project.0.", ".attn.proj."), (".mlp.0.", ".mlp.fc1."), (".mlp.3.", ".mlp.fc2."), (".project.", ".proj."),
]


def _slowfast_state(ref_state: State, separate_qkv: bool) -> State:
    out: State = {}
    for key, value in ref_state.items():
        if key.startswith("pos_encoding."):
            name = {"class_token": "cls_token", "class_pos": "pos_embed_class", "spatial_pos": "pos_embed_spatial",
                    "temporal_pos": "pos_embed_temporal"}[key.split(".", 1)[1]]
            out[name] = value.reshape(1, -1, value.shape[-1])
            continue
        key = key.replace("conv_proj.", "patch_embed.proj.").replace("head.1.", "head.projection.")
        for old, new in _TV_TO_SLOWFAST:
            key = key.replace(old, new)
        for x in "qkv":
            key = key.replace(f".attn.pool_{x}.pool.weight", f".attn.pool_{x}.weight")
            key = key.replace(f".attn.pool_{x}.norm_act.0.", f".attn.norm_{x}.")
        if separate_qkv and ".attn.qkv." in key:
            for x, part in zip("qkv", value.chunk(3, dim=0)):
                out[key.replace(".attn.qkv.", f".attn.{x}.")] = part.clone()
            continue
        out[key] = value
    return out


# SlowFast's layout -> pytorchvideo's (create_multiscale_vision_transformers): the blocks keep
# their names, the stem is patch_embed.patch_model, the tables live in cls_positional_encoding,
# the final norm is norm_embed and the head's Linear head.proj. `aliases`: pytorchvideo >= 0.1.5
# also saves every pooling conv / norm under attn._attention_pool_X.{pool,norm}.
_SLOWFAST_TO_PTV = {"patch_embed.proj.": "patch_embed.patch_model.", "norm.": "norm_embed.",
                    "head.projection.": "head.proj."}


def _pytorchvideo_state(slowfast: State, aliases: bool) -> State:
    out: State = {}
    for key, value in slowfast.items():
        if key in ("cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class"):
            out[f"cls_positional_encoding.{key}"] = value
            continue
        for old, new in _SLOWFAST_TO_PTV.items():
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
        if aliases and ".attn.pool_" in key:
            out[key.replace(".attn.pool_", ".attn._attention_pool_").replace(".weight", ".pool.weight")] = value
        if aliases and ".attn.norm_" in key:
            x = key.split(".attn.norm_")[1][0]
            out[key.replace(f".attn.norm_{x}.", f".attn._attention_pool_{x}.norm.")] = value
    return out


def _pyth(path: Path, state: State, **extra) -> Path:
    torch.save({"model_state": state, "epoch": 3, **extra}, path)
    return path


def _x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 8, 32, 32)


def _adamw_state(ref: torch.nn.Module) -> dict:
    """What SlowFast saves as optimizer_state: a real AdamW state dict (tensors, ints, floats,
    tuples, lists)."""
    params = [p for p in ref.parameters()][:3]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    sum(p.sum() for p in params).backward()
    opt.step()
    for p in params:
        p.grad = None
    return opt.state_dict()


@pytest.mark.parametrize("version,separate_qkv", [(1, False), (1, True), (2, False), (2, True)])
def test_slowfast_pyth_matches_torchvision_logits(tmp_path: Path, version: int, separate_qkv: bool) -> None:
    ref = _tv_tiny(version)
    extra = {"optimizer_state": _adamw_state(ref), "cfg": "MVIT:\n  DEPTH: 5\n"} if version == 1 else {}
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    path = _pyth(tmp_path / "mvit.pyth", _slowfast_state(state, separate_qkv), **extra)
    model = load_pretrained(path, model="mvit_tiny")
    assert model.pretrained_cfg.format == "slowfast-mvit"
    assert model.pretrained_cfg.config["version"] == version  # read from the layout, not passed
    diff = assert_same_logits(model, ref, _x())
    print(f"slowfast v{version} separate_qkv={separate_qkv}: max |diff| {diff:.2e}")


@pytest.mark.parametrize("aliases,prefix", [(False, ""), (True, ""), (False, "model.")])
def test_pytorchvideo_pyth_matches_torchvision_logits(tmp_path: Path, aliases: bool, prefix: str) -> None:
    ref = _tv_tiny(1)
    ptv = _pytorchvideo_state(_slowfast_state(ref.state_dict(), separate_qkv=True), aliases)
    path = _pyth(tmp_path / "ptv.pyth", {prefix + k: v for k, v in ptv.items()})
    model = load_pretrained(path, model="mvit_tiny", version=1)
    assert model.pretrained_cfg.format == "pytorchvideo-mvit"
    diff = assert_same_logits(model, ref, _x())
    print(f"pytorchvideo aliases={aliases} prefix={prefix!r}: max |diff| {diff:.2e}")


@pytest.mark.parametrize("version", [1, 2])
def test_torchvision_pth_through_load_pretrained(tmp_path: Path, version: int) -> None:
    ref = _tv_tiny(version)
    path = tmp_path / "tv.pth"
    torch.save(ref.state_dict(), path)
    model = load_pretrained(path, model="mvit_tiny", version=version)
    assert model.pretrained_cfg.format == "torchvision-mvit"
    diff = assert_same_logits(model, ref, _x())
    print(f"torchvision v{version}: max |diff| {diff:.2e}")


def test_each_layout_is_detected_as_one_format(tmp_path: Path) -> None:
    """sniff: SlowFast's layout is not torchvision's (conv_proj / pos_encoding) nor pytorchvideo's."""
    ref = _tv_tiny(1)
    sf = _slowfast_state(ref.state_dict(), separate_qkv=True)
    layouts = {"torchvision-mvit": ref.state_dict(), "slowfast-mvit": sf,
               "pytorchvideo-mvit": _pytorchvideo_state(sf, aliases=True)}
    for name, state in layouts.items():
        path = _pyth(tmp_path / f"{name}.pyth", state)
        assert detect_format(read_source(path)).name == name


@pytest.mark.parametrize("builder,name,separate_qkv", [("mvit_v1_b", "mvit_b_16x4", True),
                                                       ("mvit_v1_b", "mvit_b_16x4", False),
                                                       ("mvit_v2_s", "mvitv2_s_16x4", False)])
def test_paper_size_on_meta_device(builder: str, name: str, separate_qkv: bool) -> None:
    """Full size on the meta device: SlowFast's (and pytorchvideo's) layout of torchvision's
    mvit_v1_b / mvit_v2_s converts to exactly vidbench's state dict shapes, and the format infers
    the registry model and its clip size from the shapes alone."""
    with torch.device("meta"):
        ref, ours = getattr(tv_mvit, builder)(weights=None), create_model(name)
    want = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    sf = _slowfast_state(ref.state_dict(), separate_qkv)
    assert {k: tuple(v.shape) for k, v in slowfast_mvit_to_vidbench(sf).items()} == want
    source = Source(Path("K400.pyth"), "torch", sf, container="model_state")
    assert get_format("slowfast-mvit").infer(source, None, {}) == (
        name, {"num_classes": 400, "version": 2 if "v2" in name else 1, "num_frames": 16, "img_size": 224})
    if builder == "mvit_v1_b":
        ptv = _pytorchvideo_state(sf, aliases=True)
        assert {k: tuple(v.shape) for k, v in pytorchvideo_mvit_to_vidbench(ptv).items()} == want
        # 32 frames: the 32x3 table (pytorchvideo's mvit_base_32x3: MViT-B's blocks on 32 frames)
        ptv["cls_positional_encoding.pos_embed_temporal"] = torch.empty(1, 16, 96, device="meta")
        got = get_format("pytorchvideo-mvit").infer(Source(Path("x.pyth"), "torch", ptv), None, {})
        assert got == ("mvit_b_32x3", {"num_classes": 400, "version": 1, "num_frames": 32, "img_size": 224})


def test_published_entries() -> None:
    entries = {e.name: e for e in list_published() if e.format in ("slowfast-mvit", "pytorchvideo-mvit")}
    v2_bl = {"mvitv2_b_32x3.k400_slowfast", "mvitv2_l_40x3.k400_slowfast"}  # checked in tests/test_mvitv2_bl.py
    assert set(entries) == {"mvit_b_16x4.k400_slowfast", "mvitv2_s_16x4.k400_slowfast",
                            "mvit_b_16x4.k400_pytorchvideo", "mvit_b_32x3.k400_pytorchvideo"} | v2_bl
    for entry in entries.values():
        get_format(entry.format)
        if entry.name in v2_bl:
            continue
        assert entry.model in ("mvit_b_16x4", "mvit_b_32x3", "mvitv2_s_16x4")
        assert entry.views == (5, 1) and entry.crop_size == 224 and entry.mean == (0.45,) * 3
    assert find_published(Path("/x/K400_MVIT_B_16x4_CONV.pyth")).name == "mvit_b_16x4.k400_slowfast"
    assert find_published(Path("MVIT_B_32x3_f294077834.pyth")).top1 == 80.30
    sf = entries["mvitv2_s_16x4.k400_slowfast"]
    assert (sf.top1, sf.top5, sf.num_frames, sf.sampling_rate) == (81.0, 94.6, 16, 4)


def test_mvit_checkpoint_into_another_family_is_refused(tmp_path: Path) -> None:
    path = _pyth(tmp_path / "K400_MVIT_tiny.pyth", _slowfast_state(_tv_tiny(1).state_dict(), False))
    with pytest.raises(WeightsError, match=r"K400_MVIT_tiny\.pyth: holds a mvit checkpoint, not a vivit model"):
        load_pretrained(path, model="vivit_m1_tiny")


class _Payload:
    """Pickles as a call that would create a file: what weights_only must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = _slowfast_state(_tv_tiny(1).state_dict(), False)
    path = tmp_path / "evil.pyth"
    torch.save({"model_state": state, "epoch": 3, "extra": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(WeightsError, match=r"evil\.pyth: refused: .*weights_only=True; nothing was executed"):
        load_pretrained(path, model="mvit_tiny")
    assert not marker.exists()


def test_layouts_vidbench_cannot_hold_are_named(tmp_path: Path) -> None:
    sf = _slowfast_state(_tv_tiny(1).state_dict(), separate_qkv=True)
    # SlowFast's MVIT_B_32x3_CONV config: K/V kernels derived from the strides, differing by block
    varied = dict(sf, **{"blocks.0.attn.pool_k.weight": torch.zeros(24, 1, 1, 5, 5),
                         "blocks.0.attn.pool_v.weight": torch.zeros(24, 1, 1, 5, 5)})
    with pytest.raises(WeightsError, match=r"v\.pyth: SlowFast MViT with pooling kernels that differ between blocks"):
        load_pretrained(_pyth(tmp_path / "v.pyth", varied), model="mvit_tiny")
    joint = {k: v for k, v in sf.items() if not k.startswith("pos_embed_")}
    joint["pos_embed"] = torch.zeros(1, 257, 24)
    with pytest.raises(WeightsError, match=r"j\.pyth: SlowFast MViT key pos_embed: a joint position table"):
        load_pretrained(_pyth(tmp_path / "j.pyth", joint), model="mvit_tiny")
    half = {k: v for k, v in sf.items() if k != "blocks.2.attn.v.weight"}
    with pytest.raises(WeightsError, match=r"h\.pyth: .*blocks\.2\.attn lacks the v projection"):
        load_pretrained(_pyth(tmp_path / "h.pyth", half), model="mvit_tiny")
    odd = dict(sf, **{"blocks.0.attn.gamma": torch.zeros(3)})
    with pytest.raises(WeightsError, match=r"o\.pyth: SlowFast MViT key not known .*blocks\.0\.attn\.gamma"):
        load_pretrained(_pyth(tmp_path / "o.pyth", odd), model="mvit_tiny")


def test_structure_is_read_from_the_shapes(tmp_path: Path) -> None:
    """Blocks per stage, width, heads, pooling kernel and qkv bias come from the tensors: a
    SlowFast-layout MViT of another structure loads as mvit_tiny with those as config overrides."""
    src = perturb_(create_model("mvit_tiny", depths=(2, 1, 1, 1), embed_dim=16, num_heads=2, pool_kernel=(1, 3, 3),
                                qkv_bias=False, num_classes=7), seed=5).eval()
    state: State = {}
    for key, value in src.state_dict().items():  # vidbench -> SlowFast names (fused qkv)
        for x in "qkv":
            key = key.replace(f".attn.pool_{x}.conv.", f".attn.pool_{x}.").replace(f".attn.pool_{x}.norm.",
                                                                                 f".attn.norm_{x}.")
        state[key.replace("head.", "head.projection.")] = value
    model = load_pretrained(_pyth(tmp_path / "s.pyth", state), model="mvit_tiny")
    assert model.pretrained_cfg.config == {"num_classes": 7, "version": 1, "num_frames": 8, "img_size": 32,
                                           "depths": (2, 1, 1, 1), "embed_dim": 16, "num_heads": 2,
                                           "pool_kernel": (1, 3, 3), "qkv_bias": False}
    assert_same_logits(model, src, _x(), atol=1e-6)
