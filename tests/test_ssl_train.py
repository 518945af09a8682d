"""Pretraining runs: every method lowers its loss without collapse on a tiny backbone; BYOL's
EMA; the NaN stop; checkpoint and resume; SimCLR v2 fine-tuning and distillation."""
import pytest
import torch
from _ssl_data import TINY_BACKBONE, TensorImages, quadrant_images

from vidbench.models import create_model
from vidbench.ssl import METHODS, NonFiniteLoss, build_method, method_config
from vidbench.ssl.augment import MultiViewTransform, method_views
from vidbench.ssl.byol import cosine_tau
from vidbench.ssl.data import MultiViewDataset
from vidbench.ssl.train import PretrainConfig, pretrain

SMALL_HEADS = {
    "byol": dict(proj_hidden=64, proj_dim=16), "simclr": dict(proj_hidden=64, proj_dim=16),
    "simclr_v2": dict(proj_hidden=64, proj_dim=16), "wmse": dict(proj_hidden=64, emb_dim=8, w_size=16),
    "arb": dict(proj_hidden=64, proj_dim=16), "instdisc": dict(feat_dim=16, num_negatives=64),
    "contrastive": dict(proj_hidden=64, proj_dim=16),
}


def _method(name, n_images, **extra):
    vit = create_model("vit_tiny", num_classes=0, **TINY_BACKBONE)
    return build_method(name, vit, num_images=n_images, config=method_config(name, **{**SMALL_HEADS[name], **extra}))


def _dataset(name, num_views, n=128):
    x, y = quadrant_images(n)
    return MultiViewDataset(TensorImages(x, y), MultiViewTransform(method_views(name, 16, num_views), 16))


pytestmark = pytest.mark.usefixtures("one_thread")


RUNS = [(m, {}) for m in METHODS] + [("wmse", {"views": 4})]


@pytest.mark.parametrize("name,extra", RUNS, ids=[m + ("4" if e else "") for m, e in RUNS])
def test_short_pretraining_lowers_the_loss_without_collapse(name, extra):
    """24 steps on 64 images. Loss: mean of the first 3 epochs vs the last 3 (one epoch is two
    noisy steps). Collapse: embedding std under a tenth of its spread-out value (the monitor's
    warning line), or an effective rank near one."""
    method = _method(name, 64, **extra)
    history = pretrain(method, _dataset(name, method.num_views, n=64),
                       PretrainConfig(epochs=12, batch_size=32, lr=5e-3, progress=False)).history
    early = sum(r["loss"] for r in history[:3]) / 3
    late = sum(r["loss"] for r in history[-3:]) / 3
    assert late < early - 0.01 * abs(early), [round(r["loss"], 3) for r in history]
    last = history[-1]
    assert last["emb_std"] > 0.1 * last["emb_std_ref"], last
    assert last["emb_rank"] > 2.0 and last["feat_rank"] > 1.5, last
    assert last["step"] == 12 * 2


def test_byol_target_is_the_ema_of_the_online_network_after_each_step():
    method = _method("byol", 64, tau_base=0.9)
    ds = _dataset("byol", 2, n=64)
    online_before = [p.detach().clone() for p in method.backbone.parameters()]
    target_before = [p.detach().clone() for p in method.target_backbone.parameters()]
    for p, q in zip(online_before, target_before):
        assert torch.equal(p, q)  # the target starts as a copy
    pretrain(method, ds, PretrainConfig(epochs=1, batch_size=64, lr=1e-2, warmup_epochs=0, progress=False))
    tau = cosine_tau(0, 1, 0.9)  # the one step of a one-step run
    assert tau == pytest.approx(0.9)
    for t_old, t_new, online in zip(target_before, method.target_backbone.parameters(), method.backbone.parameters()):
        torch.testing.assert_close(t_new, tau * t_old + (1 - tau) * online.detach())
    assert any(not torch.equal(a, b) for a, b in zip(online_before, method.backbone.parameters()))
    assert all(not p.requires_grad for p in method.target_backbone.parameters())


def test_nan_loss_stops_with_a_clear_message():
    method = _method("simclr", 64)
    with torch.no_grad():
        method.backbone.pos_embed.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at simclr epoch 1 step 1.*Lower --lr"):
        pretrain(method, _dataset("simclr", 2, n=64), PretrainConfig(epochs=1, batch_size=32, progress=False))


def test_a_stopped_pretraining_is_the_one_training_stop_of_every_loop():
    """Pretraining and the video loop stop with one type, a user error (one line, exit 2)."""
    from vidbench.errors import TrainingStopped, UserError
    from vidbench.train.engine import TrainingStopped as video_loop_stop

    method = _method("simclr", 64)
    with torch.no_grad():
        method.backbone.pos_embed.fill_(float("nan"))
    with pytest.raises(TrainingStopped, match="loss is nan") as err:
        pretrain(method, _dataset("simclr", 2, n=64), PretrainConfig(epochs=1, batch_size=32, progress=False))
    assert video_loop_stop is TrainingStopped and isinstance(err.value, UserError)


def test_singular_whitening_stops_training_with_the_eps(tmp_path):
    from vidbench.ssl import SingularCovariance

    method = _method("wmse", 64, w_size=8)  # 8 samples for an 8-d embedding: rank 7
    with pytest.raises(SingularCovariance, match=r"use --w-size > 8.*use --w-eps 1e-\d"):
        pretrain(method, _dataset("wmse", 2, n=64), PretrainConfig(epochs=1, batch_size=32, progress=False))


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    cfg = PretrainConfig(epochs=2, batch_size=32, lr=2e-3, progress=False)
    torch.manual_seed(0)
    straight = _method("byol", 64)
    pretrain(straight, _dataset("byol", 2, n=64), cfg)

    class Interrupt(Exception):
        pass

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise Interrupt

    ckpt = tmp_path / "byol.safetensors"
    torch.manual_seed(0)
    with pytest.raises(Interrupt):
        pretrain(_method("byol", 64), _dataset("byol", 2, n=64), cfg, ckpt, on_epoch=stop_after_first)
    resumed = _method("byol", 64)
    history = pretrain(resumed, _dataset("byol", 2, n=64), cfg, ckpt, resume=True).history
    assert [r["epoch"] for r in history] == [1, 2]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_simclr_v2_finetunes_from_the_head_first_layer_and_distils_to_a_smaller_student():
    from torch.utils.data import DataLoader

    from vidbench.ssl.distill import agreement, distill, finetune
    from vidbench.ssl.simclr import SimCLRv2Classifier

    method = _method("simclr_v2", 64)
    assert len(method.projector) == 3 and isinstance(method.projector[2][1], torch.nn.BatchNorm1d)
    teacher = SimCLRv2Classifier.from_method(method, num_classes=4)
    assert teacher.head_first_layer is method.projector[0]
    x, y = quadrant_images(64)
    labelled = DataLoader(TensorImages(x, y), batch_size=32, shuffle=True)
    losses = finetune(teacher, labelled, epochs=3, lr=3e-3)
    assert losses[-1] < losses[0]
    student = create_model("vit_tiny", num_classes=4, **{**TINY_BACKBONE, "embed_dim": 16})
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    unlabelled = DataLoader(TensorImages(*quadrant_images(64, seed=1)), batch_size=32, shuffle=True)
    before = agreement(teacher, student, unlabelled)
    losses = distill(teacher, student, unlabelled, epochs=8, temperature=2.0, lr=3e-3)
    assert losses[-1] < losses[0]
    assert agreement(teacher, student, unlabelled) > before


def test_finetune_and_distill_are_the_training_cores_adamw_at_a_constant_lr():
    """Step by step the same weights as AdamW over the core's groups (weight decay spares biases,
    norms and the model's no_weight_decay(), as in every loop) at a constant lr; a NaN stops
    each with the project's TrainingStopped."""
    import copy

    import torch.nn.functional as F

    from vidbench.errors import TrainingStopped
    from vidbench.ssl.distill import distill, distillation_loss, finetune
    from vidbench.train.core import param_groups

    torch.manual_seed(0)
    model = create_model("vit_tiny", num_classes=4, **{**TINY_BACKBONE, "embed_dim": 16, "depth": 1})
    x, y = quadrant_images(16)
    batches = [(x[:8], y[:8]), (x[8:], y[8:])]
    teacher, ref = copy.deepcopy(model), copy.deepcopy(model)
    losses = finetune(model, batches, epochs=2, lr=1e-2, weight_decay=0.5)
    opt = torch.optim.AdamW(param_groups(ref, 0.5), lr=1e-2)
    for _ in range(2):
        for xb, yb in batches:
            opt.zero_grad()
            F.cross_entropy(ref(xb), yb).backward()
            opt.step()
    assert len(losses) == 2 and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))

    student, ref = copy.deepcopy(ref), copy.deepcopy(ref)
    distill(teacher, student, [x[:8]], epochs=2, temperature=2.0, lr=1e-2)
    opt = torch.optim.AdamW(param_groups(ref, 0.0), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        distillation_loss(ref(x[:8]), teacher(x[:8]), 2.0).backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), ref.state_dict().values()))

    with torch.no_grad():
        teacher.pos_embed.fill_(float("nan"))
    with pytest.raises(TrainingStopped, match="loss is nan at distillation epoch 1"):
        distill(teacher, student, [x[:8]], epochs=1)
    with pytest.raises(TrainingStopped, match="loss is nan at fine-tuning epoch 1"):
        finetune(teacher.requires_grad_(True), batches, epochs=1)


def test_a_scheduled_finetune_needs_a_loader_with_a_length():
    from vidbench.errors import ConfigError
    from vidbench.ssl.distill import constant_lr, finetune

    model = create_model("vit_tiny", num_classes=4, **{**TINY_BACKBONE, "embed_dim": 16, "depth": 1})
    x, y = quadrant_images(8)
    cosine = constant_lr(2, lr=1e-2)
    cosine.min_lr = 0.0
    with pytest.raises(ConfigError, match="fine-tuning: a warm-up or cosine schedule is counted in steps per epoch"):
        finetune(model, iter([(x, y)]), epochs=2, options=cosine)
    assert len(finetune(model, [(x, y)], epochs=2, options=cosine)) == 2
