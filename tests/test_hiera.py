"""Hiera: the model against Meta's `hiera-transformer` video models (perturbed weights, both kernel
paths), its checkpoints through `vidbench.weights`, the unrolled token order, FLOPs against the
package's own model, the published entries, the one-kernel rule and gradient checkpointing."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_

import vidbench.layers.attention as attention_module
from vidbench.bench import count_flops
from vidbench.models import create_model
from vidbench.models._registry import ModelConfigError
from vidbench.models.hiera import unroll
from vidbench.weights import WeightsError, find_published, list_published, load_pretrained

with warnings.catch_warnings():  # the package imports timm.models.layers (deprecated in timm 1.x)
    warnings.simplefilter("ignore", FutureWarning)
    hiera = pytest.importorskip("hiera", reason="hiera-transformer is in the test extra")
from hiera.hiera_utils import Unroll  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# hiera_tiny's architecture in the package's arguments (its video defaults, Hiera-B's stem)
TINY = dict(input_size=(4, 32, 32), embed_dim=16, num_heads=1, stages=(1, 2, 2, 1), q_pool=3, q_stride=(1, 2, 2),
            mask_unit_size=(1, 4, 4), patch_kernel=(3, 7, 7), patch_stride=(2, 4, 4), patch_padding=(1, 3, 3),
            sep_pos_embed=True, num_classes=5)


def _reference(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    ref = hiera.Hiera(**{**TINY, **kw})
    perturb_(ref, seed=seed)  # every weight: position tables, norms, biases, the head
    return ref.eval()


def _logits(ref: torch.nn.Module):
    """The reference's pre-softmax output: its `Head` applies a softmax in eval mode."""

    def run(x: torch.Tensor) -> torch.Tensor:
        act, ref.head.act_func = ref.head.act_func, (lambda y: y)
        try:
            return ref(x)
        finally:
            ref.head.act_func = act

    return run


def _clip(frames: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layout", ["model_state", "state_dict"])
def test_official_checkpoint_matches_the_package(tmp_path: Path, layout: str) -> None:
    """A `hiera.Hiera` saved as the model zoo's files are (`{"model_state": ...}`, what the
    package's `pretrained_model` loader indexes) or as a plain state dict, loaded through
    vidbench.weights: the same logits on both kernel paths, and the package's own eval output
    (softmax probabilities) is the softmax of vidbench's logits."""
    ref = _reference()
    state = ref.state_dict()
    path = tmp_path / "hiera_tiny_k400.pth"
    torch.save({"model_state": state} if layout == "model_state" else state, path)
    model = load_pretrained(path, model="hiera_tiny")
    info, cfg = model.pretrained_cfg, model.config
    assert info.format == "hiera-official" and type(model).__name__ == "Hiera"
    assert (cfg.depths, cfg.embed_dim, cfg.num_frames, cfg.img_size, cfg.num_classes) == ((1, 2, 2, 1), 16, 4,
                                                                                           (32, 32), 5)
    x = _clip()
    diff = assert_same_logits(model, _logits(ref), x)
    print(f"hiera-official ({layout}): max |diff| {diff:.2e}")
    with torch.no_grad():
        torch.testing.assert_close(model(x).softmax(-1), ref(x), atol=1e-5, rtol=0)
        assert float((ref(x) - ref(x.flip(2))).abs().max()) > 1e-4  # frame order and positions matter


def test_hub_directory_matches_the_package(tmp_path: Path) -> None:
    """`Hiera.save_pretrained(dir, config=model.config)`, the layout of the Hub's
    facebook/hiera_*_16x224.* repositories: config.json gives the fields no tensor holds (here a
    1x4x4 mask unit, 2 heads), so no `model=` is needed; a config.json its tensors contradict is refused."""
    pytest.importorskip("huggingface_hub")
    ref = _reference(seed=5, num_heads=2)
    ref.save_pretrained(tmp_path / "hub", config=ref.config)
    model = load_pretrained(tmp_path / "hub")
    cfg = model.config
    assert model.pretrained_cfg.format == "hiera-official"
    assert (cfg.mask_unit_size, cfg.num_heads, cfg.depths, cfg.num_frames, cfg.num_classes) == ((1, 4, 4), 2,
                                                                                                (1, 2, 2, 1), 4, 5)
    diff = assert_same_logits(model, _logits(ref), _clip())
    print(f"hiera-official (Hub directory): max |diff| {diff:.2e}")
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    (tmp_path / "hub" / "config.json").write_text(json.dumps({**config, "stages": [1, 1, 3, 1]}))
    with pytest.raises(WeightsError, match="does not match its tensors: depths"):
        load_pretrained(tmp_path / "hub")


@pytest.mark.parametrize("change", [dict(q_pool=2), dict(sep_pos_embed=False, mask_unit_attn=(True, False, False, False)),
                                    dict(num_heads=2, head_mul=1.0, dim_mul=1.5)])
def test_other_configs_match_the_package(change: dict) -> None:
    """Fewer query poolings (the last stage keeps the unrolled order: only the mean is used), one
    position table, other mask-unit stages, heads and widths: the same logits, both paths."""
    ref = _reference(seed=3, **change)
    ours = {"q_pool": "q_pool", "sep_pos_embed": "sep_pos_embed", "mask_unit_attn": "mask_unit_attn",
            "num_heads": "num_heads", "head_mul": "head_mul", "dim_mul": "dim_mul"}
    model = create_model("hiera_tiny", num_classes=5, **{ours[k]: v for k, v in change.items()})
    state = {k.replace("head.projection.", "head."): v for k, v in ref.state_dict().items()}
    model.load_state_dict(state, strict=True)
    diff = assert_same_logits(model, _logits(ref), _clip())
    print(f"hiera {change}: max |diff| {diff:.2e}")


def test_unroll_is_the_packages() -> None:
    x = torch.randn(2, 4 * 16 * 8, 3)
    want = Unroll((8, 64, 32), (2, 4, 4), [(1, 2, 2)] * 3)(x)
    torch.testing.assert_close(unroll(x, (4, 16, 8), (1, 2, 2), 3), want, atol=0, rtol=0)


def test_flops_equal_the_packages_model() -> None:
    """fvcore counts vidbench's Hiera-B 16x224 as it counts the package's model (101.93 GMACs per
    view; the paper's figure was not read here), with no uncounted op doing arithmetic (every
    size: tests/test_flops.py)."""
    torch.manual_seed(0)
    ref = hiera.hiera_base_16x224().to("meta")
    ours, theirs = count_flops("hiera_base_16x224"), count_flops(ref, input_size=(3, 16, 224, 224))
    assert ours.device == "meta" and ours.uncounted_ops == {}
    assert ours.macs == theirs.macs
    assert ours.macs / 1e9 == pytest.approx(101.93, abs=0.01)


def test_one_kernel_call_per_block(monkeypatch) -> None:
    """Stage 1 attends in 8 mask units of 16 tokens, stage 2's first block pools their queries to
    4, the first block of stage 3 still uses mask units (the lag), the rest attend globally."""
    calls = []
    kernel = attention_module.scaled_dot_product

    def counting(q, k, v, **kw):
        calls.append((tuple(q.shape), k.shape[-2]))
        return kernel(q, k, v, **kw)

    monkeypatch.setattr("vidbench.models.hiera.scaled_dot_product", counting)
    model = create_model("hiera_tiny").eval()
    with torch.no_grad():
        model(torch.randn(1, *model.input_size))
    assert calls == [((8, 1, 16, 16), 16),  # stage 1: 8 mask units of 1x4x4
                     ((8, 2, 4, 16), 16), ((8, 2, 4, 16), 4),  # stage 2: pooled queries, then 2x2 units
                     ((8, 4, 1, 16), 4), ((1, 4, 8, 16), 8),  # stage 3: pooled within units, then global
                     ((1, 8, 2, 16), 8)]  # stage 4: global, pooled queries
    assert len(calls) == len(model.blocks)


def test_grad_checkpointing_recomputes_every_block() -> None:
    model = create_model("hiera_tiny").train()
    x = torch.randn(2, *model.input_size)
    runs = []
    for blk in model.blocks:
        blk.register_forward_pre_hook(lambda module, args: runs.append(module))
    want = model(x)
    model.set_grad_checkpointing(True)
    runs.clear()
    got = model(x)
    got.sum().backward()
    assert len(runs) == 2 * len(model.blocks)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert all(p.grad is not None for p in model.parameters())


def test_configs_it_cannot_run_are_refused() -> None:
    with pytest.raises(ModelConfigError, match="token grid"):
        create_model("hiera_tiny", img_size=48)  # 12 tokens across: not 3 poolings of 2
    with pytest.raises(ModelConfigError, match="mask_unit_attn"):
        create_model("hiera_tiny", mask_unit_attn=(True, False))
    with pytest.raises(ModelConfigError, match="q_pool"):
        create_model("hiera_tiny", q_pool=4)


def test_pretraining_and_image_checkpoints_are_refused(tmp_path: Path) -> None:
    state = _reference().state_dict()
    mae = tmp_path / "mae_hiera_tiny.pth"
    torch.save({"model_state": {**state, "mask_token": torch.zeros(1, 1, 8)}}, mae)
    with pytest.raises(WeightsError, match="MAE pre-training"):
        load_pretrained(mae, model="hiera_tiny")
    image = hiera.Hiera(embed_dim=16, stages=(1, 1, 1, 1), mask_unit_size=(4, 4), input_size=(32, 32), num_classes=5)
    path = tmp_path / "hiera_image.pth"
    torch.save({"model_state": image.state_dict()}, path)
    with pytest.raises(WeightsError, match="video models"):
        load_pretrained(path, format="hiera-official")
    with pytest.raises(WeightsError):  # not detected as Hiera (a 2-D stem), and loaded as nothing else
        load_pretrained(path)


def test_published_entries() -> None:
    base = find_published(Path("hiera_base_16x224.pth"))
    assert base is not None and base.model == "hiera_base_16x224" and base.format == "hiera-official"
    assert (base.num_frames, base.sampling_rate, base.views, base.top1) == (16, 4, (5, 3), 84.0)
    entries = {w.model: w for w in list_published() if w.format == "hiera-official"}
    assert {m: w.top1 for m, w in entries.items()} == {"hiera_base_16x224": 84.0, "hiera_base_plus_16x224": 85.0,
                                                       "hiera_large_16x224": 87.3, "hiera_huge_16x224": 87.8}
    for w in entries.values():
        with torch.device("meta"):
            model = create_model(w.model)
        assert model.input_size == (3, w.num_frames, w.crop_size, w.crop_size)
        assert w.files == (f"{w.model}.pth", w.name) and w.name == f"{w.model}.mae_k400_ft_k400"
    hub_cache = Path("models--facebook--hiera_large_16x224.mae_k400_ft_k400/snapshots/0123abc")
    assert find_published(hub_cache).model == "hiera_large_16x224"
