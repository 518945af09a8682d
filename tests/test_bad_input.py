import json
import os

import pytest
import torch
from _cli_helpers import one_line_error

from vidbench.cli import main
from vidbench.data import make_dataset
from vidbench.models import create_model


def test_video_model_rejects_wrong_rank():
    model = create_model("vivit_m1_tiny")
    with pytest.raises(ValueError, match=r"expected a video batch of shape \(B, C, T, H, W\), got a 4-d tensor"):
        model(torch.randn(2, 3, 32, 32))


def test_image_model_rejects_video():
    with pytest.raises(ValueError, match=r"expected an image batch of shape \(B, C, H, W\)"):
        create_model("vit_tiny", img_size=32, patch_size=8)(torch.randn(1, 3, 8, 32, 32))


@pytest.mark.parametrize("name", ["vivit_m2_tiny", "timesformer_tiny", "vtn_tiny", "vit_frameavg_tiny"])
def test_wrong_channel_count(name):
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        create_model(name)(torch.randn(1, 1, 8, 32, 32))


def test_frames_not_divisible_by_tubelet_names_both_numbers():
    with pytest.raises(ValueError, match="frame count 9 is not divisible by the patch/tubelet size 2"):
        create_model("vivit_m1_tiny", num_frames=9)
    with pytest.raises(ValueError, match="image height 36 is not divisible by the patch/tubelet size 8"):
        create_model("timesformer_tiny", img_size=36)


def test_clip_of_another_size_says_how_to_build_for_it():
    with pytest.raises(ValueError, match="built for 8 frames of 32x32, got 16 frames of 32x32.*num_frames=16"):
        create_model("vivit_m3_tiny")(torch.randn(1, 3, 16, 32, 32))


def test_unknown_model():
    with pytest.raises(KeyError, match="unknown model"):
        create_model("resnet50")


def test_bad_config_values():
    with pytest.raises(ValueError, match="attention_type must be one of"):
        create_model("timesformer_tiny", attention_type="diagonal")
    with pytest.raises(ValueError, match="has no cls token"):
        create_model("vivit_m3_tiny", classifier="token")
    with pytest.raises(ValueError, match="time_embed_std must be >= 0, got -0.5"):
        create_model("timesformer_tiny", time_embed_std=-0.5)
    with pytest.raises(ValueError, match="temporal_pos_std must be >= 0, got -1"):
        create_model("vivit_m2_tiny", temporal_pos_std=-1)
    with pytest.raises(ValueError, match="exceeds"):
        create_model("vtn_tiny", num_frames=100)


# -- every value checked where it is defined (issue 26): one line, exit 2, before any work --------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square"], videos_per_class=4)


def _train(data, out, *extra):
    return main(["train", "--model", "vivit_m1_tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--workers", "0", "--no-progress", *extra])


@pytest.mark.parametrize("arg,needle", [
    ("num_heads=0", "num_heads must be >= 1, got 0"),
    ("tubelet_size=0,8,8", "tubelet_size must be >= 1 in every axis, got (0, 8, 8)"),
    ("depth=-1", "depth must be >= 1, got -1"),
    ("tubelet_size=2,8", "tubelet_size must be a positive integer or three positive sizes (T, H, W), got (2, 8)"),
    ("tubelet_size=2,8,8,8", "got (2, 8, 8, 8)"),
    ("drop_path_rate=1.5", "drop_path_rate must be in [0, 1), got 1.5"),
])
def test_model_args_no_model_can_take_are_refused(tiny_data, tmp_path, capsys, arg, needle):
    assert _train(tiny_data, tmp_path / "run", "--model-arg", arg) == 2
    one_line_error(capsys, "vivit_m1_tiny with", needle)
    assert not (tmp_path / "run" / "train.csv").exists()


def test_a_size_is_never_read_with_another_number_of_axes():
    from vidbench.layers import to_2tuple, to_3tuple

    assert to_3tuple(8) == (1, 8, 8) and to_3tuple([2, 8, 8]) == (2, 8, 8) and to_2tuple(32) == (32, 32)
    for bad in ((2, 8), (2, 8, 8, 8)):
        with pytest.raises(ValueError, match=r"an integer or \(t, h, w\)"):
            to_3tuple(bad)
    with pytest.raises(ValueError, match=r"an integer or \(h, w\)"):
        to_2tuple((32, 32, 32))


@pytest.mark.parametrize("key,value,needle", [
    ("num_attention_heads", 0, "num_heads must be >= 1, got 0"),
    ("num_hidden_layers", -1, "depth must be >= 1, got -1"),
    ("patch_size", 0, "patch_size must be >= 1, got 0"),
    ("hidden_size", 0, "config.json: hidden_size must be >= 1, got 0"),
])
def test_hf_config_with_zero_or_negative_sizes(tmp_path, capsys, key, value, needle):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.TimesformerConfig(image_size=16, patch_size=8, num_frames=2, hidden_size=16,
                                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=2)
    path = tmp_path / "hf"
    transformers.TimesformerForVideoClassification(cfg).save_pretrained(path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, key: value}))
    capsys.readouterr()  # transformers' progress bar
    assert main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 2
    one_line_error(capsys, str(path), needle)
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("flags,needle", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "-1"], "--lr must be > 0, got -1.0"),
    (["--label-smoothing", "1.5"], "--label-smoothing must be < 1, got 1.5"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1.0"),
    (["--min-lr", "0.01", "--lr", "0.001"], "min_lr 0.01 is above lr 0.001"),
    (["--warmup-epochs", "inf"], "--warmup-epochs must be a finite number, got inf"),
    (["--device", "gpu0"], "--device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu0'"),
    (["--device", "foo"], "got 'foo'"),
])
def test_training_options_are_refused_before_any_work(tiny_data, tmp_path, capsys, flags, needle):
    assert _train(tiny_data, tmp_path / "run", *flags) == 2
    one_line_error(capsys, "vidbench train: ", needle)
    assert not (tmp_path / "run").exists()


def test_cuda_asked_for_without_cuda_is_one_line_in_every_command(tiny_data, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pretrain = ["pretrain", "--method", "byol", "--data", str(tiny_data), "--out", str(tmp_path / "ssl"),
                "--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
                "--batch-size", "4", "--frames", "2", "--no-progress"]
    for argv in (["train", "--model", "vit_frameavg_tiny", "--data", str(tiny_data), "--out", str(tmp_path / "t")],
                 ["eval", "--weights", str(tmp_path / "w.safetensors"), "--data", str(tiny_data)],
                 pretrain, ["bench", "--models", "vit_tiny", "--out", str(tmp_path / "b")],
                 # the device is checked before the data is opened (a missing --data would be named first)
                 ["ssl-eval", "--init", "random", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "e")]):
        assert main([*argv, "--device", "cuda:0"]) == 2, argv
        one_line_error(capsys, "--device cuda:0: CUDA is not available here")
    assert not any(tmp_path.iterdir())


def test_train_device_cuda_n_is_that_device(monkeypatch):
    """--device cuda:1 was cuda:0 (the local rank), mps was the CPU."""
    import torch

    from vidbench.distributed import setup_distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: None)
    assert setup_distributed("cuda:1").device == torch.device("cuda:1")
    assert setup_distributed("cuda").device == torch.device("cuda:0")
    with pytest.raises(ValueError, match="this machine has 2 CUDA device"):
        setup_distributed("cuda:2")


@pytest.mark.parametrize("flags,needle", [
    (["--img-size", "33"], "size must be even"),
    (["--classes", "purple"], "unknown synthetic class(es) 'purple'"),
    (["--val-fraction", "0.6", "--test-fraction", "0.5"], "leave no videos for training"),
    (["--val-fraction", "nan"], "--val-fraction must be a finite number, got nan"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--preset", "kinetics", "--duration-s", "nan"], "--duration-s must be a finite number of seconds > 0, got nan"),
    (["--preset", "ssv2", "--duration-s", "inf"], "got inf"),
    (["--preset", "kinetics", "--short-side", "100000"], "GiB to render"),
])
def test_dataset_options_are_refused_before_any_video(tmp_path, capsys, flags, needle):
    out = tmp_path / "data"
    assert main(["make-dataset", "--out", str(out), "--videos-per-class", "3", *flags]) == 2
    one_line_error(capsys, "vidbench make-dataset: ", needle)
    assert not out.exists()


def test_bench_timeout_and_process_count(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "--models", "vit_tiny", "--timeout-s", "0", "--out", str(out), "--no-progress"]) == 2
    one_line_error(capsys, "--timeout-s must be > 0, got 0.0")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    argv = ["bench", "--models", "vit_tiny", "--mode", "train", "--nproc", str(cores + 1), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 2
    one_line_error(capsys, f"nproc {cores + 1} is more processes than the {cores} CPU core(s)", "--oversubscribe")
    assert not out.exists()
    from vidbench.bench import SweepConfig

    assert SweepConfig(models=["vit_tiny"], nproc=cores + 1, oversubscribe=True).nproc == cores + 1


def test_a_suite_section_gets_the_same_checks(tmp_path):
    from vidbench.errors import ConfigError
    from vidbench.suite.spec import load_suite

    path = tmp_path / "s.toml"
    path.write_text('[train]\nmodels = ["vit_tiny"]\nlr = -0.1\n')
    with pytest.raises(ConfigError, match=r"s.toml \[train\]: lr must be > 0, got -0.1"):
        load_suite(path)
    path.write_text('[bench]\nmodels = ["vit_tiny"]\ntimeout_s = 0\n')
    with pytest.raises(ConfigError, match=r"\[bench\]: timeout_s must be > 0, got 0"):
        load_suite(path)


def test_wmse_batch_below_its_whitening_size_is_refused_before_reading_data(tmp_path, capsys):
    missing = tmp_path / "no-such-data"  # never opened: the refusal comes first
    assert main(["pretrain", "--method", "wmse", "--data", str(missing), "--out", str(tmp_path / "ssl"),
                 "--batch-size", "8", "--no-progress"]) == 2
    one_line_error(capsys, "wmse: batch_size 8 is below the whitening sub-batch w_size 128", "--w-size <= 8")
    assert not (tmp_path / "ssl").exists()


@pytest.mark.parametrize("argv", [
    ["pretrain", "--method", "simclr", "--data", "nowhere", "--out", "o", "--threads"],
    ["bench", "--models", "vit_tiny", "--out", "o", "--threads"],
    ["extract-frames", "--data", "nowhere", "--out", "o", "--workers"],
    ["check-data", "nowhere", "--workers"],
    ["train", "--model", "vit_tiny", "--data", "nowhere", "--out", "o", "--workers"],
])
def test_thread_and_worker_counts_are_bounded_by_the_cores(argv, tmp_path, monkeypatch, capsys):
    """--threads 10**12 overflowed torch in a traceback; 40 forked decoder workers ran a 24 GiB machine
    out of memory: more than 4 per usable core is refused before anything is opened."""
    from vidbench.options import PER_CORE_LIMIT
    from vidbench.results import available_cpus

    monkeypatch.chdir(tmp_path)
    limit = PER_CORE_LIMIT * available_cpus()
    for value in (limit + 1, 10 ** 6):  # (10**12: above any integer option's 2**31 - 1, refused as such)
        assert main([*argv, str(value), "--no-progress"] if argv[0] != "check-data" else [*argv, str(value)]) == 2
        one_line_error(capsys, f"{argv[-1]} {value} is more than {PER_CORE_LIMIT} per CPU core", f"at most {limit}")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv,needle", [
    (["flops", "vit_tiny", "--img-size", str(10 ** 12)], "--img-size must be at most 2,147,483,647"),
    (["train", "--model", "vit_tiny", "--data", "nowhere", "--out", "o", "--batch-size", str(2 ** 63)],
     "--batch-size must be at most 2,147,483,647"),
    (["flops", "vit_tiny", "--img-size", "100000"], "img_size must be at most 65,536"),
    (["bench", "--models", "vit_tiny", "--model-arg", "embed_dim=9999999", "--out", "o"],
     "embed_dim must be at most 65,536"),
    (["bench", "--models", "vit_tiny", "--model-arg", "mlp_ratio=1e12", "--out", "o"],
     "mlp_ratio must be at most 64, got 1e+12"),
    (["pretrain", "--method", "simclr", "--data", "nowhere", "--out", "o", "--proj-dim", "0"],
     "simclr: option proj_dim must be in [1, 16,777,216], got 0"),
    (["pretrain", "--method", "byol", "--data", "nowhere", "--out", "o", "--proj-hidden", str(2 ** 63)],
     "byol: option proj_hidden must be in [1, 16,777,216]"),
    (["pretrain", "--method", "simclr", "--data", "nowhere", "--out", "o", "--temperature", "nan"],
     "option temperature must be a finite number"),
])
def test_sizes_no_model_or_method_takes_are_refused(argv, needle, tmp_path, monkeypatch, capsys):
    """Found by the CLI property test: these overflowed torch ('Overflow when unpacking long'), divided by
    zero, or failed inside the data loader, each in a traceback (the train one after making its folder)."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    one_line_error(capsys, needle)
    assert not any(tmp_path.iterdir())
