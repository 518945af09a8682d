"""mmaction2 checkpoints (`{'state_dict', 'meta'}`, keys `backbone.*` / `cls_head.*`) load into
vidbench's models with mmaction2's own logits, and mmengine training checkpoints (`epoch_N.pth`)
are read without running code.

The references are mmaction2's OWN backbone modules (mmaction2 1.2.0, mmengine, mmcv-lite from
the test extra: pure-Python wheels). The 1.2.0 wheel cannot be imported the usual way
(`mmaction/__init__.py` asserts mmcv < 2.2.0 and `mmaction.models` imports a localizer missing
from the wheel), so `_mmaction_backbone` (vidbench.bench.compare.mmaction_backbone) loads the
backbone files themselves: the `mmaction`, `mmaction.models`, `.backbones` and `.common` packages
are put in `sys.modules` as bare packages (their `__init__` files are not run) and the backbone
modules are imported from the installed files. The heads are one linear layer, written out here as mmaction2's heads apply them
(TimeSformerHead and the VideoMAE config: fc on the backbone's vector; I3DHead: mean over
T, H, W, then fc; MViTHead: fc on the cls token).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch
from _weights_helpers import CodeMarker, Marker, assert_same_logits, perturb_
from torch import nn

from vidbench.bench.compare import mmaction_backbone
from vidbench.weights import WeightsError, detect_format, find_published, list_published, load_pretrained, read_source
from vidbench.weights.formats.mmaction2 import cfg_preprocess

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_CLASSES = 5


def _mmaction_backbone(name: str) -> Any:
    """mmaction2's backbone module `name` (vidbench.bench.compare.mmaction_backbone: see there why
    not `import mmaction.models`); skipped without the test extra's mmaction2 / mmengine / mmcv-lite."""
    pytest.importorskip("mmengine", reason="mmengine is in the test extra")
    pytest.importorskip("mmcv", reason="mmcv-lite is in the test extra")
    try:
        return mmaction_backbone(name)
    except ImportError as exc:
        pytest.skip(f"mmaction2 is in the test extra ({exc})")


def _head(dim: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return perturb_(nn.Linear(dim, NUM_CLASSES), seed=seed + 1)


def _save(path: Path, backbone: nn.Module, head: nn.Linear, meta: Dict[str, Any] = None) -> Path:
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({"cls_head.fc_cls.weight": head.weight.detach(), "cls_head.fc_cls.bias": head.bias.detach()})
    torch.save({"state_dict": state, "meta": meta or {}}, path)
    return path


def _clip(frames: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention", ["divided_space_time", "joint_space_time", "space_only"])
def test_timesformer_same_logits_as_mmaction2(tmp_path, attention):
    mod = _mmaction_backbone("timesformer")
    torch.manual_seed(0)
    backbone = perturb_(mod.TimeSformer(num_frames=4, img_size=32, patch_size=8, embed_dims=48, num_heads=3,
                                        num_transformer_layers=2, attention_type=attention)).eval()
    head = _head(48, 1)
    path = _save(tmp_path / "ts.pth", backbone, head)
    assert detect_format(read_source(path)).name == "mmaction2"
    model = load_pretrained(path, num_heads=3, num_frames=4)  # space-only holds nothing per frame
    want = {"divided_space_time": "divided", "joint_space_time": "joint", "space_only": "space_only"}[attention]
    assert model.config.attention_type == want and model.config.num_frames == 4 and model.config.img_size == 32
    assert_same_logits(model, lambda x: head(backbone(x)), _clip(4, 32))


def test_swin_same_logits_as_mmaction2(tmp_path):
    """4 stages, out_indices=(3,): the final norm is `backbone.norm3` (what failed before)."""
    mod = _mmaction_backbone("swin")
    torch.manual_seed(0)
    backbone = perturb_(mod.SwinTransformer3D(arch={"embed_dims": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]},
                                              window_size=(2, 2, 2), patch_size=(2, 4, 4)))
    backbone.eval()  # (mmaction2's train() override returns None)
    assert "norm3.weight" in backbone.state_dict()
    head = _head(64, 2)
    path = _save(tmp_path / "swin.pth", backbone, head)
    assert detect_format(read_source(path)).name == "mmaction2"
    model = load_pretrained(path, num_frames=4, img_size=64)
    assert model.config.depths == (2, 2, 2, 2) and tuple(model.config.window_size) == (2, 2, 2)
    assert_same_logits(model, lambda x: head(backbone(x).mean(dim=(2, 3, 4))), _clip(4, 64))


def test_mvit_same_logits_as_mmaction2(tmp_path):
    mod = _mmaction_backbone("mvit")
    torch.manual_seed(0)
    arch = {"embed_dims": 16, "num_layers": 4, "num_heads": 1, "downscale_indices": [1, 2, 3]}
    backbone = perturb_(mod.MViT(arch=arch, spatial_size=64, temporal_size=4)).eval()
    head = _head(128, 3)
    path = _save(tmp_path / "mvit.pth", backbone, head)
    assert detect_format(read_source(path)).name == "mmaction2"
    model = load_pretrained(path)
    assert model.model_name == "mvitv2_s_16x4" and model.config.depths == (1, 1, 1, 1)
    assert model.config.num_frames == 4 and tuple(model.config.img_size) == (64, 64)
    assert_same_logits(model, lambda x: head(backbone(x)[-1][1]), _clip(4, 64))


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_videomae_same_logits_as_mmaction2(tmp_path, mean_pooling):
    mod = _mmaction_backbone("vit_mae")
    torch.manual_seed(0)
    backbone = mod.VisionTransformer(img_size=32, patch_size=16, embed_dims=48, depth=2, num_heads=3, num_frames=4,
                                     use_mean_pooling=mean_pooling)
    table = backbone.pos_embed.clone()
    perturb_(backbone).eval()
    backbone.pos_embed.copy_(table)  # the fixed sinusoid buffer, not a weight
    head = _head(48, 4)
    path = _save(tmp_path / "vmae.pth", backbone, head)
    assert detect_format(read_source(path)).name == "mmaction2"
    model = load_pretrained(path, num_heads=3, img_size=32)
    cfg = model.config
    assert (cfg.num_frames, cfg.tubelet_size, cfg.use_mean_pooling, cfg.norm_eps) == (4, (2, 16, 16), mean_pooling, 1e-6)
    assert_same_logits(model, lambda x: head(backbone(x)), _clip(4, 32))


def test_videomae_without_its_position_buffer_loads_at_the_configs_frames(tmp_path):
    """mmaction2 loads checkpoints non-strictly: a ported file may lack the fixed `pos_embed` buffer."""
    mod = _mmaction_backbone("vit_mae")
    backbone = mod.VisionTransformer(img_size=32, patch_size=16, embed_dims=48, depth=1, num_heads=3, num_frames=16)
    table = backbone.pos_embed.clone()
    perturb_(backbone).eval()
    backbone.pos_embed.copy_(table)
    head = _head(48, 5)
    path = _save(tmp_path / "nopos.pth", backbone, head)
    saved = torch.load(str(path), weights_only=True)
    del saved["state_dict"]["backbone.pos_embed"]
    torch.save(saved, path)
    model = load_pretrained(path, num_heads=3, img_size=32)
    assert model.config.num_frames == 16
    assert_same_logits(model, lambda x: head(backbone(x)), _clip(16, 32))


def test_videomae_learned_positions_and_layer_scale_refused(tmp_path):
    mod = _mmaction_backbone("vit_mae")
    head = _head(48, 4)
    learned = perturb_(mod.VisionTransformer(img_size=32, patch_size=16, embed_dims=48, depth=1, num_heads=3,
                                             num_frames=4, use_learnable_pos_emb=True))
    with pytest.raises(WeightsError, match="not the fixed sinusoid table"):
        load_pretrained(_save(tmp_path / "learned.pth", learned, head), img_size=32)
    scaled = mod.VisionTransformer(img_size=32, patch_size=16, embed_dims=48, depth=1, num_heads=3, num_frames=4,
                                   init_values=0.1)
    with pytest.raises(WeightsError, match="gamma_1: layer scale"):
        load_pretrained(_save(tmp_path / "scaled.pth", scaled, head), img_size=32)


def _hub_checkpoint(path: Path, state: Dict[str, torch.Tensor], extra: Any = None) -> Path:
    """An `epoch_N.pth` as mmengine's Runner.save_checkpoint writes it (runner/runner.py): meta with
    the config text and dataset_meta, the model's state_dict, MessageHub.state_dict() (HistoryBuffer
    objects of numpy values), optimizer and scheduler state; written by mmengine's own save_checkpoint."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    hub = MessageHub.get_instance(f"vidbench-test-{path.name}")
    for step in range(3):
        hub.update_scalar("train/loss", np.float64(1.0 / (step + 1)))
        hub.update_scalar("train/lr", 0.01)
    hub.update_info("epoch", 2)
    hub.update_info("iter", np.int64(42))
    params = [nn.Parameter(torch.ones(3))]
    opt = torch.optim.AdamW(params)
    params[0].sum().backward()
    opt.step()
    cfg = ("model = dict(\n    type='Recognizer3D',\n    data_preprocessor=dict(\n        type='ActionDataPreprocessor',\n"
           "        mean=[123.675, 116.28, 103.53],\n        std=[58.395, 57.12, 57.375],\n"
           "        format_shape='NCTHW'))\n"
           "test_pipeline = [\n    dict(type='DecordInit'),\n    dict(\n        type='SampleFrames',\n"
           "        clip_len=16,\n        frame_interval=4,\n        num_clips=5,\n        test_mode=True),\n"
           "    dict(type='Resize', scale=(-1, 224)),\n    dict(type='ThreeCrop', crop_size=224),\n]\n")
    hub_state = hub.state_dict()
    if extra is not None:
        hub_state["runtime_info"]["evil"] = extra
    checkpoint = {"meta": {"cfg": cfg, "seed": np.int64(1234), "epoch": 2, "iter": 42,
                           "dataset_meta": {"classes": tuple(f"class_{i}" for i in range(NUM_CLASSES))}},
                  "state_dict": weights_to_cpu(OrderedDict(state)), "message_hub": hub_state, "optimizer": opt.state_dict(),
                  "param_schedulers": [{"base_lrs": [0.01], "last_epoch": 2}]}
    save_checkpoint(checkpoint, str(path))
    return path


def _videomae_state(seed: int = 0) -> Dict[str, torch.Tensor]:
    mod = _mmaction_backbone("vit_mae")
    torch.manual_seed(seed)
    backbone = mod.VisionTransformer(img_size=32, patch_size=16, embed_dims=48, depth=1, num_heads=3, num_frames=4)
    table = backbone.pos_embed.clone()
    perturb_(backbone).pos_embed.copy_(table)
    head = _head(48, seed)
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({"cls_head.fc_cls.weight": head.weight.detach(), "cls_head.fc_cls.bias": head.bias.detach()})
    return state


def test_mmengine_training_checkpoint_loads_without_running_code(tmp_path):
    pytest.importorskip("mmengine", reason="mmengine is in the test extra")
    state = _videomae_state()
    path = _hub_checkpoint(tmp_path / "epoch_2.pth", state)
    with pytest.raises(Exception, match="(?i)weights only load failed|Unsupported global"):
        torch.load(str(path), weights_only=True)  # what failed before: torch's weights-only unpickler refuses it
    source = read_source(path)
    assert source.container == "state_dict" and set(source.state) == set(state)
    assert all(torch.equal(source.state[k], v) for k, v in state.items())
    assert source.meta["epoch"] == 2 and "Recognizer3D" in source.meta["cfg"]
    model = load_pretrained(path, num_heads=3, img_size=32)
    info = model.pretrained_cfg
    assert info.format == "mmaction2" and info.class_names == [f"class_{i}" for i in range(NUM_CLASSES)]
    assert info.preprocess_source == "checkpoint config (mmaction2)"
    pre = info.preprocess
    assert pre["mean"] == pytest.approx([0.485, 0.456, 0.406], abs=1e-3) and pre["std"][0] == pytest.approx(0.229, 1e-3)
    assert (pre["sampling_rate"], pre["resize_size"], pre["crop_size"], pre["views"]) == (4, 224, 32, "5x3")


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess", "open"])
def test_training_checkpoint_with_code_is_refused(tmp_path, kind):
    """A payload inside the message hub, after the globals the reader allows: refused by name and
    nothing runs (the marker file is not created)."""
    pytest.importorskip("mmengine", reason="mmengine is in the test extra")
    marker = tmp_path / "ran"
    payload = Marker(marker) if kind == "open" else CodeMarker(marker, kind)
    path = _hub_checkpoint(tmp_path / "epoch_9.pth", _videomae_state(), extra=payload)
    with pytest.raises(WeightsError) as err:
        load_pretrained(path, num_heads=3, img_size=32)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "refused" in message
    assert {"os.system": "posix.system", "builtins.exec": "builtins.exec", "subprocess": "subprocess.call",
            "open": "io.open"}[kind] in message
    assert not marker.exists()


def test_cfg_preprocess_reads_mmaction2_config_text():
    text = ("model = dict(data_preprocessor=dict(type='ActionDataPreprocessor', mean=[127.5, 127.5, 127.5], "
            "std=[127.5, 127.5, 127.5], format_shape='NCTHW'))\n"
            "test_pipeline = [\n    dict(type='SampleFrames', clip_len=8, frame_interval=32, num_clips=1, "
            "test_mode=True),\n    dict(type='Resize', scale=(-1, 224)),\n    dict(type='CenterCrop', crop_size=224),\n]\n")
    assert cfg_preprocess(text) == {"mean": [0.5] * 3, "std": [0.5] * 3, "num_frames": 8, "sampling_rate": 32,
                                    "crop_size": 224, "resize_size": 224, "views": "1x1"}
    assert cfg_preprocess("nothing here") == {}


def test_videoswin_official_release_still_its_own_format(tmp_path):
    """The official Video Swin release ends in `backbone.norm`; mmaction2 1.x in `backbone.norm3`:
    each is detected as exactly one format."""
    mod = _mmaction_backbone("swin")
    backbone = mod.SwinTransformer3D(arch={"embed_dims": 8, "depths": [1, 1], "num_heads": [1, 1]},
                                     window_size=(2, 2, 2), out_indices=(1,))
    head = _head(16, 0)
    path = _save(tmp_path / "mm.pth", backbone, head)
    assert detect_format(read_source(path)).name == "mmaction2"
    state = torch.load(str(path), weights_only=True)["state_dict"]
    state = {k.replace("backbone.norm1.", "backbone.norm."): v for k, v in state.items()}
    torch.save({"state_dict": state}, tmp_path / "official.pth")
    assert detect_format(read_source(tmp_path / "official.pth")).name == "videoswin-official"


def test_published_entries_and_names():
    entries = {w.name: w for w in list_published() if w.format == "mmaction2"}
    assert len(entries) == 14  # 13, and MViTv2-L (tests/test_mvitv2_bl.py)
    ts = entries["timesformer_base.k400_divst_mmaction2"]
    assert (ts.num_frames, ts.sampling_rate, ts.views, ts.mean, ts.top1) == (8, 32, (1, 3), (0.5, 0.5, 0.5), 77.69)
    assert entries["timesformer_base.k400_jointst_mmaction2"].overrides == {"attention_type": "joint"}
    swin = entries["swin3d_t.k400_mmaction2"]
    assert (swin.num_frames, swin.sampling_rate, swin.views, swin.top1) == (32, 2, (4, 3), 78.90)
    mvit_b = entries["mvitv2_b_32x3.k400_mmaction2"]
    assert (mvit_b.num_frames, mvit_b.sampling_rate, mvit_b.views, mvit_b.mean, mvit_b.top1) == (
        32, 3, (5, 1), (0.45,) * 3, 82.6)
    vmae = entries["videomae_base.k400_mmaction2"]
    assert (vmae.num_frames, vmae.sampling_rate, vmae.views, vmae.top1) == (16, 4, (5, 3), 81.3)
    with torch.device("meta"):
        from vidbench.models import create_model

        for entry in entries.values():  # every entry builds at its published size
            model = create_model(entry.model, **entry.overrides)
            assert model.input_size[-1] == entry.crop_size and model.input_size[1] == entry.num_frames, entry.name
    name = "mvit-base-p244_32x3x1_kinetics400-rgb_20221021-f392cd2d.pth"
    assert find_published(Path("/x") / name).name == "mvitv2_b_32x3.k400_mmaction2"
