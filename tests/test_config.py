"""One configuration vocabulary: each job's options are one dataclass, and the CLI flags and the
suite TOML sections are its fields (one name, one default, one help text); old spellings keep
working for a release with a one-line warning. One training core: both loops' schedules and
weight-decay groups are the ones they had."""
import argparse
import dataclasses
import json
import math
import textwrap

import pytest
import torch

from vidbench.bench import SweepConfig
from vidbench.cli import build_parser
from vidbench.cli._options import config_from_args, flag_name
from vidbench.ssl.train import PretrainConfig
from vidbench.suite import load_suite
from vidbench.train import EvalConfig, TrainConfig
from vidbench.train.core import lr_at, param_groups, warmup_cosine

JOBS = [("train", TrainConfig, ["--out", "o", "--model", "m"]), ("eval", EvalConfig, ["--checkpoint", "c"]),
        ("bench", SweepConfig, []), ("pretrain", PretrainConfig, ["--method", "byol", "--data", "d", "--out", "o"])]


def _parse(argv):
    return build_parser().parse_args(argv)


def _subparser(command):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command,cls,required", JOBS, ids=[j[0] for j in JOBS])
def test_every_field_is_a_flag_with_its_help_and_the_dataclass_default(command, cls, required):
    parser = _subparser(command)
    flags = {s: a for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        flag = flag_name(f)
        if f.default is True:  # progress: --no-progress
            flag = "--no-" + flag[2:]
        assert flag in flags, (command, f.name)
        assert f.metadata["help"] in flags[flag].help, (command, f.name)
    # nothing given: the dataclass's own defaults, not the parser's
    args = _parse([command, *required])
    made = config_from_args(cls, args)
    fixed = {"out": "o", "model": "m"} if cls is TrainConfig else {"checkpoint": "c"} if cls is EvalConfig else {}
    assert made == cls(**fixed)


def test_one_spelling_per_concept_across_commands():
    for command, _, _ in JOBS:
        actions = {s: a for a in _subparser(command)._actions for s in a.option_strings}
        assert "--precision" in actions, command
        for old in ("--num-frames", "--frames-per-clip", "--size", "--amp", "--grad-clip"):
            assert old not in actions or actions[old].help == argparse.SUPPRESS, (command, old)  # hidden
    for command in ("train", "eval", "bench", "flops", "convert"):
        flags = {s for a in _subparser(command)._actions for s in a.option_strings}
        assert {"--frames", "--img-size"} <= flags, command
    assert "--frames" in {s for a in _subparser("pretrain")._actions for s in a.option_strings}


@pytest.mark.parametrize("argv,field,value,new", [
    (["train", "--out", "o", "--model", "m", "--num-frames", "4"], "frames", 4, "--frames"),
    (["train", "--out", "o", "--model", "m", "--size", "16"], "img_size", 16, "--img-size"),
    (["train", "--out", "o", "--model", "m", "--amp", "none"], "precision", "fp32", "--precision fp32"),
    (["train", "--out", "o", "--model", "m", "--amp", "bf16"], "precision", "bf16", "--precision bf16"),
    (["eval", "--checkpoint", "c", "--amp", "fp16"], "precision", "fp16", "--precision fp16"),
    (["pretrain", "--method", "byol", "--data", "d", "--out", "o", "--amp"], "precision", "bf16", "--precision bf16"),
    (["pretrain", "--method", "byol", "--data", "d", "--out", "o", "--grad-clip", "2"], "clip_grad", 2.0, "--clip-grad"),
    (["pretrain", "--method", "byol", "--data", "d", "--out", "o", "--frames-per-clip", "3"], "frames", 3, "--frames"),
    (["bench", "--models", "vit_tiny", "--timeout", "5"], "timeout_s", 5.0, "--timeout-s"),
])
def test_deprecated_flags_still_work_and_say_so_in_one_line(argv, field, value, new, capsys):
    args = _parse(argv)
    assert getattr(args, field) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is deprecated, use " + new in err[0], err


def test_old_keyword_names_and_the_amp_vocabulary():
    with pytest.warns(FutureWarning, match="amp is deprecated, use precision"):
        assert TrainConfig(model="m", out="o", amp="none").precision == "fp32"
    with pytest.warns(FutureWarning):
        assert PretrainConfig(amp=True, grad_clip=1.5).precision == "bf16"
    with pytest.warns(FutureWarning):
        cfg = SweepConfig(models=["vit_tiny"], batch_sizes=[2], precisions=["bf16"], modes=["infer"], img_sizes=[32])
    assert (cfg.batch_size, cfg.precision, cfg.mode, cfg.img_size) == ([2], ["bf16"], ["infer"], [32])
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(model="m", out="o", amp="bf16", precision="fp32")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        TrainConfig(model="m", out="o", precision="fp8")
    with pytest.raises(ValueError, match="batch_size is a list"):
        SweepConfig(models=["vit_tiny"], batch_size=4)
    # the shared training fields are one declaration with each loop's default
    shared = {f.name for f in dataclasses.fields(PretrainConfig)} & {f.name for f in dataclasses.fields(TrainConfig)}
    assert {"epochs", "batch_size", "lr", "min_lr", "weight_decay", "warmup_epochs", "clip_grad", "precision",
            "num_workers", "seed", "device", "progress"} <= shared
    assert (PretrainConfig().batch_size, TrainConfig(model="m", out="o").batch_size) == (256, 16)


def test_evaluate_checkpoint_takes_keywords_only(tmp_path):
    from vidbench.train import evaluate_checkpoint

    with pytest.raises(TypeError):
        evaluate_checkpoint(tmp_path / "c.safetensors", str(tmp_path), "4x3")


SUITE = """
[bench]
models = ["vit_tiny"]
{bench}
[train]
models = ["vivit_m1_tiny"]
{train}
[ssl]
methods = ["byol"]
{ssl}
"""


def test_suite_sections_are_the_jobs_fields_and_old_keys_still_load(tmp_path):
    new = tmp_path / "new.toml"
    new.write_text(SUITE.format(bench="batch_size = [2]\nimg_size = [32]\ncompile = true\nretry_oom = 1",
                                train="lr = 0.001\nnum_workers = 0\nprecision = \"bf16\"\nframes = 4",
                                ssl="frames = 2\nclip_grad = 1.0\nprecision = \"bf16\""))
    old = tmp_path / "old.toml"
    old.write_text(SUITE.format(bench="batch_sizes = [2]\nimg_sizes = [32]\ncompile = true\nretry_oom = 1",
                                train='options = { lr = 0.001, num_workers = 0, amp = "bf16", num_frames = 4 }',
                                ssl="frames_per_clip = 2\ngrad_clip = 1.0\namp = true"))
    a = load_suite(new)
    with pytest.warns(FutureWarning) as record:
        b = load_suite(old)
    assert len(record) >= 7 and all("old.toml" in str(w.message) for w in record)
    for section in ("bench", "train", "ssl"):
        assert getattr(a, section) == getattr(b, section), section
    assert a.bench.img_size == [32] and a.bench.compile and a.train.precision == "bf16" and a.ssl.frames == 2
    # defaults are the command's: a field added to the job appears in the suite with its default
    assert a.bench.warmup == SweepConfig().warmup and a.train.epochs == TrainConfig(model="m", out="o").epochs
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nmodels = ['vit_tiny']\ndevice = 'cuda'\n")  # the suite sets the device
    with pytest.raises(ValueError, match=r"bad.toml \[train\]: unknown key\(s\) device"):
        load_suite(bad)


# -- the training core -------------------------------------------------------------------------
def _old_ssl_lr(step, total, warmup, base):
    """The SSL loop's schedule before the core (ssl/train.py lr_at)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def _lrs(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("total,warmup", [(40, 8), (10, 0), (6, 9), (1, 1)])
def test_both_loops_keep_their_schedules_exactly(total, warmup):
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW(p, lr=1e-3)
    assert _lrs(warmup_cosine(opt, total, warmup), opt, total) == \
        [_old_ssl_lr(s, total, warmup, 1e-3) for s in range(total)]
    assert [lr_at(s, total, warmup, 1e-3) for s in range(total)] == [_old_ssl_lr(s, total, warmup, 1e-3)
                                                                     for s in range(total)]
    # the video loop's torch chain, built as engine._schedule built it
    opt_a, opt_b = torch.optim.AdamW(p, lr=5e-4), torch.optim.AdamW(p, lr=5e-4)
    w = min(warmup, total - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt_a, T_max=max(1, total - w), eta_min=1e-5)
    old = cos if w <= 0 else torch.optim.lr_scheduler.SequentialLR(
        opt_a, [torch.optim.lr_scheduler.LinearLR(opt_a, start_factor=1e-3, end_factor=1.0, total_iters=w), cos],
        milestones=[w])
    assert _lrs(warmup_cosine(opt_b, total, warmup, min_lr=1e-5, warmup_from=1e-3), opt_b, total) == \
        _lrs(old, opt_a, total)


def test_ssl_methods_spare_what_their_backbone_names():
    from vidbench.models import create_model
    from vidbench.ssl import METHODS, build_method

    for name in METHODS:
        vit = create_model("vit_tiny", num_classes=0, img_size=16, patch_size=8, depth=1, embed_dim=32, num_heads=2)
        method = build_method(name, vit, num_images=64)
        assert method.no_weight_decay() == {"backbone.pos_embed", "backbone.cls_token"}, name
        decay, no_decay = param_groups(method, 0.05)
        before = {n for n, q in method.named_parameters()  # the SSL loop's rule before the core
                  if q.requires_grad and (q.ndim <= 1 or n.endswith(("pos_embed", "cls_token", "time_embed")))}
        named = {id(q): n for n, q in method.named_parameters()}
        assert {named[id(q)] for q in no_decay["params"]} == before, name
        assert len(decay["params"]) + len(no_decay["params"]) == sum(q.requires_grad for q in method.parameters())


def test_resume_accepts_a_run_written_with_the_old_option_names(tmp_path):
    from vidbench.checkpoint import save_checkpoint
    from vidbench.models import create_model
    from vidbench.train.engine import CHECKPOINT, TrainingStopped, _check_fresh_or_resumable

    cfg = TrainConfig(model="vit_frameavg_tiny", out=str(tmp_path), resume=True, frames=8, img_size=32)
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("precision", "frames", "img_size")}
    old.update(amp="none", num_frames=8, size=32)  # what a checkpoint of the previous release holds
    model = create_model("vit_frameavg_tiny", depth=1)
    save_checkpoint(model, tmp_path / CHECKPOINT, {"epoch": 1, "train_config": json.loads(json.dumps(old))})
    assert _check_fresh_or_resumable(cfg, tmp_path)["epoch"] == 1
    with pytest.raises(TrainingStopped, match=r"precision 'fp32' -> 'bf16'"):
        _check_fresh_or_resumable(dataclasses.replace(cfg, precision="bf16"), tmp_path)


def test_init_reads_the_checkpoint_once_and_builds_the_model_once(tmp_path, monkeypatch):
    import vidbench.train.engine as engine
    from vidbench.checkpoint import save_checkpoint
    from vidbench.data import make_dataset
    from vidbench.models import VisionTransformer, ViTConfig

    data = make_dataset(tmp_path / "d", ["red_disc", "grow"], videos_per_class=4)
    vit = VisionTransformer(ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=0))
    path = save_checkpoint(vit, tmp_path / "byol.safetensors", {"method": "byol"})
    calls = {"load": 0, "build": 0}
    real_load, real_create = engine.load_checkpoint, engine.create_model

    def load(*a, **k):
        calls["load"] += 1
        return real_load(*a, **k)

    def create(*a, **k):
        if torch.empty(0).device.type != "meta":
            calls["build"] += 1
        return real_create(*a, **k)

    monkeypatch.setattr(engine, "load_checkpoint", load)
    monkeypatch.setattr(engine, "create_model", create)
    engine.train(TrainConfig(model="timesformer_tiny", data=str(data), out=str(tmp_path / "r"), init=str(path),
                             epochs=1, batch_size=4, num_workers=0, progress=False))
    assert calls == {"load": 1, "build": 1}


def test_a_pretraining_state_of_the_previous_format_resumes_exactly(tmp_path):
    """States written before the core kept the weights as method.* and no schedule: --resume of
    such a run continues as an uninterrupted one."""
    from _ssl_data import TINY_BACKBONE, TensorImages, quadrant_images
    from safetensors import safe_open
    from safetensors.torch import save_file

    from vidbench.models import create_model
    from vidbench.ssl import build_method, method_config
    from vidbench.ssl.augment import MultiViewTransform, method_views
    from vidbench.ssl.data import MultiViewDataset
    from vidbench.ssl.train import pretrain

    def method():
        vit = create_model("vit_tiny", num_classes=0, **TINY_BACKBONE)
        return build_method("simclr", vit, config=method_config("simclr", proj_hidden=32, proj_dim=16))

    def data():
        x, y = quadrant_images(64)
        return MultiViewDataset(TensorImages(x, y), MultiViewTransform(method_views("simclr", 16, 2), 16))

    cfg = PretrainConfig(epochs=3, batch_size=32, lr=2e-3, warmup_epochs=1.5, progress=False)
    torch.manual_seed(0)
    straight = method()
    pretrain(straight, data(), cfg)

    class Stop(Exception):
        pass

    def stop(row):
        if row["epoch"] == 1:
            raise Stop

    state = tmp_path / "simclr.safetensors"
    torch.manual_seed(0)
    with pytest.raises(Stop):
        pretrain(method(), data(), cfg, state, on_epoch=stop)
    with safe_open(str(state), framework="pt") as f:  # rewrite it as the previous release wrote it
        meta = dict(f.metadata())
        tensors = {k.replace("extra.model.", "extra.method."): f.get_tensor(k) for k in f.keys()}
    meta["scheduler"] = "{}"
    meta["param_groups"] = json.dumps([{k: v for k, v in g.items() if k != "initial_lr"}
                                       for g in json.loads(meta["param_groups"])])
    save_file(tensors, str(state), metadata=meta)
    resumed = method()
    pretrain(resumed, data(), cfg, state, resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_measure_arguments_are_written_once():
    from vidbench.bench.grid import expand_grid
    from vidbench.bench.point import measure_args

    cfg = SweepConfig(models=["vivit_m1_tiny"], frames=[16], batch_size=[2], mode=["train"], warmup=1, iters=2)
    args = measure_args(expand_grid(cfg)[0], cfg, gmacs=1.0, peak=None)
    assert args == {"model": "vivit_m1_tiny", "mode": "train", "precision": "fp32", "device": "cpu", "batch_size": 2,
                    "warmup": 1, "iters": 2, "compile": None, "gmacs": 1.0, "peak_flops": None, "img_size": 32,
                    "num_frames": 16, "attn_backend": "auto", "grad_checkpointing": False, "detail": False}


def test_bench_key_columns_are_sweep_fields():
    from vidbench.bench import KEY_COLUMNS

    assert set(KEY_COLUMNS) - {"model"} <= {f.name for f in dataclasses.fields(SweepConfig)}


def test_a_suite_bench_section_takes_every_sweep_field(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent("""
        [bench]
        models = ["vit_tiny"]
        img_size = [32, 64]
        isolate = false
        timeout_s = 30.0
        model_kwargs = { depth = 1 }
    """))
    spec = load_suite(path).bench
    assert (spec.img_size, spec.isolate, spec.timeout_s, spec.model_kwargs) == ([32, 64], False, 30.0, {"depth": 1})
