"""VideoMAE V2 (Wang et al., CVPR 2023): ViT-g/14 as a VideoMAE registry config, and the official
checkpoint layout (OpenGVLab/VideoMAEv2 `models/modeling_finetune.py`).

The V2 fine-tuning model is VideoMAE's encoder (q / v biases, fixed sinusoids, mean pooling then
fc_norm, LayerNorm eps 1e-6, no layer scale) at new sizes: ViT-g/14 has patch 14 and
mlp_ratio 48 / 11. The references:
- Hugging Face's `VideoMAEForVideoClassification` at a V2-like tiny config (patch 7 at 28 px,
  width 44 with 4 heads of 11, MLP 192 = 44 * 48 / 11), perturbed, both kernel paths;
- the official layout: the official code is a repository, not a package on the registry, so the
  checkpoint is that same perturbed HF model written under the official key names (the names of
  modeling_finetune.py, which HF's convert_videomae_to_pytorch.py maps one to one: qkv.weight
  holding [q; k; v], q_bias / v_bias, patch_embed.proj, fc_norm, head) inside `{"module": ...}`
  as DeepSpeed saves it, with HF's fc_norm set to the official eps 1e-6 (HF builds torch's 1e-5).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_
from einops import rearrange

from vidbench.models import create_model
from vidbench.weights import (
    Source,
    WeightsError,
    check_fit,
    detect_format,
    find_published,
    get_format,
    list_published,
    load_pretrained,
    read_source,
)

transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
from transformers import VideoMAEConfig, VideoMAEForVideoClassification  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

V2_TINY = dict(image_size=28, patch_size=7, num_frames=4, tubelet_size=2, hidden_size=44, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=192, num_labels=5, layer_norm_eps=1e-6, use_mean_pooling=True)
# official name -> HF name, per block (HF's convert_videomae_to_pytorch.py, read backwards)
_OFFICIAL_BLOCK = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
                   "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}


def _hf(seed: int = 0, **kw) -> VideoMAEForVideoClassification:
    torch.manual_seed(seed)
    hf = VideoMAEForVideoClassification(VideoMAEConfig(**{**V2_TINY, **kw}))
    return perturb_(hf, seed=seed).eval()


def _clip(frames: int = 4, size: int = 28, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_logits(hf):
    return lambda x: hf(pixel_values=rearrange(x, "b c t h w -> b t c h w")).logits


def official_state(hf: VideoMAEForVideoClassification) -> dict:
    """The HF model's tensors under the official modeling_finetune.py names."""
    sd = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    out = {"patch_embed.proj.weight": sd.pop("videomae.embeddings.patch_embeddings.projection.weight"),
           "patch_embed.proj.bias": sd.pop("videomae.embeddings.patch_embeddings.projection.bias"),
           "fc_norm.weight": sd.pop("fc_norm.weight"), "fc_norm.bias": sd.pop("fc_norm.bias"),
           "head.weight": sd.pop("classifier.weight"), "head.bias": sd.pop("classifier.bias")}
    for i in range(hf.config.num_hidden_layers):
        hf_block = f"videomae.encoder.layer.{i}."
        att = hf_block + "attention.attention."
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([sd.pop(att + f"{p}.weight") for p in ("query", "key", "value")])
        out[f"blocks.{i}.attn.q_bias"] = sd.pop(att + "query.bias")
        out[f"blocks.{i}.attn.v_bias"] = sd.pop(att + "value.bias")
        for official, name in _OFFICIAL_BLOCK.items():
            for leaf in ("weight", "bias"):
                out[f"blocks.{i}.{official}.{leaf}"] = sd.pop(hf_block + f"{name}.{leaf}")
    assert not sd, sorted(sd)  # every HF tensor has its official name
    return out


def test_hf_v2_like_config_same_logits(tmp_path: Path) -> None:
    """Patch 7 (tokens 2x4x4), mlp_ratio 48 / 11: HF's own save_pretrained directory through
    hf-videomae, HF's logits on both kernel paths."""
    hf = _hf()
    hf.save_pretrained(tmp_path / "hf")
    model = load_pretrained(tmp_path / "hf")
    cfg = model.config
    assert (cfg.tubelet_size, cfg.mlp_ratio, model.blocks[0].mlp.fc1.out_features) == ((2, 7, 7), 192 / 44, 192)
    diff = assert_same_logits(model, _hf_logits(hf), _clip())
    print(f"hf-videomae V2-like: max |diff| {diff:.2e}")


def test_official_layout_same_logits(tmp_path: Path) -> None:
    hf = _hf(seed=2)
    hf.fc_norm.eps = 1e-6  # the official fc_norm: partial(nn.LayerNorm, eps=1e-6)
    torch.save({"module": official_state(hf)}, tmp_path / "vit_t_k710_ft.pth")
    source = read_source(tmp_path / "vit_t_k710_ft.pth")
    assert source.container == "module" and detect_format(source).name == "videomaev2-official"
    model = load_pretrained(tmp_path / "vit_t_k710_ft.pth", num_heads=4, img_size=28, num_frames=4)
    cfg = model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.tubelet_size, cfg.num_classes) == (44, 2, 4, (2, 7, 7), 5)
    assert (cfg.norm_eps, cfg.fc_norm_eps, cfg.use_mean_pooling, cfg.qkv_bias) == (1e-6, 1e-6, True, True)
    assert torch.equal(model.blocks[0].attn.qkv.bias[44:88], torch.zeros(44))  # the official cat(q_bias, 0, v_bias)
    diff = assert_same_logits(model, _hf_logits(hf), _clip())
    print(f"videomaev2-official: max |diff| {diff:.2e}")
    torch.save({"model": official_state(hf)}, tmp_path / "model_key.pth")  # run_class_finetuning's other key
    assert read_source(tmp_path / "model_key.pth").container == "model"
    other = load_pretrained(tmp_path / "model_key.pth", num_heads=4, img_size=28, num_frames=4)
    assert_same_logits(other, _hf_logits(hf), _clip())


@pytest.mark.parametrize("extra,match", [
    ({"blocks.0.gamma_1": torch.ones(44)}, "gamma_1: layer scale"),
    ({"blocks.0.attn.scale": torch.ones(4, 1, 1)}, "attn.scale: cosine attention"),
    ({"pos_embed": torch.zeros(1, 32, 44)}, "pos_embed: a learned position table"),
    ({"blocks.0.attn.rope": torch.ones(2)}, "key not known to vidbench's converter: blocks.0.attn.rope"),
])
def test_what_vidbench_cannot_hold_is_refused(tmp_path: Path, extra, match) -> None:
    state = {**official_state(_hf()), **extra}
    torch.save({"module": state}, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match=match):
        load_pretrained(tmp_path / "x.pth", num_heads=4, img_size=28, num_frames=4, weights_format="videomaev2-official")


def test_giant_maps_shape_for_shape_on_meta() -> None:
    """ViT-g/14 (official vit_giant_patch14_224): HF's VideoMAE at that size on the meta device,
    written in the official layout with a K710 head, infers videomae_v2_giant and fits it. (HF built
    at 2 frames: no tensor depends on the frames, and its Python-loop position table for 16 frames
    takes seconds.)"""
    with torch.device("meta"):
        hf = VideoMAEForVideoClassification(VideoMAEConfig(
            image_size=224, patch_size=14, num_frames=2, tubelet_size=2, hidden_size=1408, num_hidden_layers=40,
            num_attention_heads=16, intermediate_size=6144, num_labels=710, use_mean_pooling=True))
        source = Source(Path("vit_g_hybrid_pt_1200e_k710_ft.pth"), "torch", official_state(hf), container="module")
        fmt = get_format("videomaev2-official")
        assert fmt.sniff(source)
        name, config = fmt.infer(source, None, {})
        assert name == "videomae_v2_giant" and config["num_heads"] == 16 and config["num_classes"] == 710
        model = create_model(name, **config)
    assert model.blocks[0].mlp.fc1.out_features == 6144 and model.patch_embed.num_patches == 8 * 16 * 16
    state = fmt.convert(source, model)
    check_fit(state, model, "meta")
    official = sum(v.numel() for v in official_state(hf).values())
    assert sum(p.numel() for p in model.parameters()) == official + 40 * 1408  # + the zero k biases
    # the official ViT-g: 1,011,610,752 without its head, 1,012,174,352 with a 400-class one (1.01B)
    assert official == 1_012_611_142 and official - 710 * 1408 - 710 == 1_011_610_752


def test_registry_giant_config() -> None:
    with torch.device("meta"):
        model = create_model("videomae_v2_giant")
    cfg = model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.tubelet_size, cfg.norm_eps) == (1408, 40, 16, (2, 14, 14), 1e-6)
    assert int(cfg.embed_dim * cfg.mlp_ratio) == 6144 and model.input_size == (3, 16, 224, 224)


def test_published_distilled_entries() -> None:
    entries = {e.name: e for e in list_published() if e.format == "videomaev2-official"}
    assert set(entries) == {"videomae_small.k710_v2_dist_official", "videomae_base.k710_v2_dist_official"}
    b = entries["videomae_base.k710_v2_dist_official"]
    assert (b.model, b.overrides, b.top1, b.views, b.num_frames, b.sampling_rate, b.dataset) == (
        "videomae_base", {"num_classes": 710}, 81.5, (5, 3), 16, 4, "Kinetics-710 val")
    assert entries["videomae_small.k710_v2_dist_official"].top1 == 77.6
    assert find_published(Path("/x/vit_s_k710_dl_from_giant.pth")).name == "videomae_small.k710_v2_dist_official"
