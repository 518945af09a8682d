"""benchmarks/data_loading.py on a tiny Kinetics-preset copy (2 videos of 66 frames, short side
64): CPU accounting that counts DataLoader workers, the naive / per-view / staged-PyAV paths
giving the dataset's own clips, the whole script's rows, and the README section built from them."""
import importlib.util
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidbench.data import ClipSampler, VideoClipDataset, build_dataset
from vidbench.data.presets import make_preset_dataset
from vidbench.data.spec import DataSpec
from vidbench.data.videoio import PyAVSource, cuda_problem
from vidbench.report import readme
from vidbench.results import ResultsStore

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "data_loading.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("data_loading_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_script()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("kin") / "k"
    return make_preset_dataset(out, "kinetics", classes=["red_disc", "move_left"], videos_per_class=1,
                               duration_s=2.2, short_side=64)


def train_set(data, sampling="dense16x4", backend="pyav") -> VideoClipDataset:
    return build_dataset(DataSpec.load(data), "train", True, sampler=bench.SAMPLINGS[sampling], size=32,
                         backend=backend, bad_items="raise")[0]


def test_measure_counts_the_workers_cpu(tiny):
    dataset = train_set(tiny)
    alone = bench.measure(dataset, 0, 1, 2)
    assert alone["clips"] == 3 and alone["warmup_clips"] == 1  # 2 passes of 2 clips, the first batch untimed
    assert alone["worker_cpu_s"] == 0 and alone["cpu_s"] == alone["main_cpu_s"] > 0
    pooled = bench.measure(dataset, 1, 1, 2)
    assert pooled["clips"] == 4 and pooled["warmup_clips"] == 2  # an untimed pass, then 2 timed
    # the decoding happens in the worker: its CPU is counted, and getrusage saw at least as much once it exited
    assert pooled["worker_cpu_s"] > pooled["main_cpu_s"] >= 0
    assert pooled["worker_cpu_s_lifetime"] >= pooled["worker_cpu_s"]
    assert pooled["cpu_s_per_clip"] == pytest.approx(pooled["cpu_s"] / 4, abs=1e-3)
    assert not multiprocessing.active_children()


def test_naive_per_view_and_staged_paths_give_the_datasets_clips(tiny):
    dataset = train_set(tiny)
    naive = bench.NaivePyAVDataset(dataset)
    for i in range(len(dataset)):
        assert torch.equal(naive[i][0], dataset[i][0])
    source = PyAVSource(dataset.records[0].path)
    wanted = [40, 3, 44, 3, 65]
    frames, decoded = bench.staged_pyav_get(source, wanted)
    assert torch.equal(frames, source.get(wanted))
    assert len(set(wanted)) <= decoded <= source.num_frames
    everything, count = bench.staged_naive(dataset.records[0].path)
    assert count == source.num_frames and torch.equal(everything[wanted], frames)
    test = build_dataset(DataSpec.load(tiny), "train", False, views=(2, 3), sampler=ClipSampler(8, 4), size=32,
                         backend="pyav", bad_items="raise")[0]
    assert torch.equal(bench.PerViewDataset(test)[1][0], test[1][0])
    stages, wall, per_clip, frames_per_video = bench.profile_pyav(dataset, False, 2)
    assert {"decode", "colour conversion", "resize (random resized crop)"} <= set(stages)
    assert 0 < sum(stages.values()) <= wall * 1.05 and 16 <= per_clip <= frames_per_video == 66


def test_script_rows_and_readme_section(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    bench.main(["--data", str(tiny), "--test-split", "train", "--size", "32", "--batch-size", "1", "--passes", "1",
                "--workers", "0", "--backends", "pyav", "--sampling", "dense16x4", "--views", "2x3",
                "--profile-clips", "2", "--rawframes", str(tmp_path / "raw"), "--out", str(out), "--cost"])
    df = pd.read_csv(out / "data_loading.csv")
    train = df[df["views"] == "1x1"]
    assert list(train["loader"]) == ["vidbench-pyav", "rawframes", bench.NAIVE]
    assert (train["clips"] == 1).all() and (train["cpu_s_per_clip"] > 0).all() and (train["crop_size"] == 32).all()
    assert list(df[df["views"] == "2x3"]["decode"]) == ["once", "per-view"]
    assert (tmp_path / "raw" / "train_rawframes.txt").exists()
    profile = pd.read_csv(out / "data_loading_profile.csv")
    assert set(profile["loader"]) == {"vidbench-pyav", bench.NAIVE}
    assert (profile[profile["loader"] == bench.NAIVE]["frames_decoded_per_clip"] == 66).all()
    text = readme.data_loading(out)
    assert "| loader | workers | clips/s | vs naive | CPU s / clip | sampling |" in text
    assert "| naive-pyav-all-frames | 0 | " in text and "| 1.00x |" in text
    assert "target 3x" in text and "target 2x" in text and "Where a clip's time goes" in text
    printed = capsys.readouterr().out
    assert "decode-once" in printed and "cores per GPU = " in printed


def test_readme_section_arithmetic(tmp_path):
    rows = [("vidbench-pyav", "dense16x4", "1x1", "clip", 0, 12.0, 0.15),
            ("naive-pyav-all-frames", "dense16x4", "1x1", "clip", 0, 6.0, 0.20),
            ("vidbench-pyav", "dense16x4", "1x1", "clip", 2, 30.0, 0.10),
            ("naive-pyav-all-frames", "dense16x4", "1x1", "clip", 2, 10.0, 0.40),
            ("vidbench-decord", "uniform8", "1x1", "clip", 2, 5.0, 0.20),
            ("vidbench-pyav", "dense16x4", "4x3", "once", 0, 2.0, 0.5),
            ("vidbench-pyav", "dense16x4", "4x3", "per-view", 0, 0.8, 1.2)]
    pd.DataFrame(rows, columns=["loader", "sampling", "views", "decode", "workers", "clips_per_s", "cpu_s_per_clip"]
                 ).to_csv(tmp_path / "data_loading.csv", index=False)
    text = readme.data_loading(tmp_path)
    assert "| vidbench-pyav | 0 / 2 | 12.00 / 30.00 | 2.00x / 3.00x | 0.150 / 0.100 | dense16x4 |" in text
    assert "| vidbench-decord | 2 | 5.00 | - | 0.200 | uniform8 |" in text  # no naive row for uniform8
    assert "(target 3x): 0 workers: vidbench-pyav 2.00x; 2 workers: vidbench-pyav 3.00x." in text
    assert "| vidbench-pyav | dense16x4 | 4x3 | 0 | 2.00 | 0.80 | 2.50x | 0.50 / 1.20 |" in text
    assert "0.100 s (vidbench-pyav); a GPU taking t s per training clip needs 0.100 / t CPU cores" in text


def test_loader_cost_rows_before_and_after(tiny, tmp_path):
    """The --cost pairs: float vs uint8 transforms, transform vs decoder resize per backend, and
    the GPU-decoding row (skipped, with its one-line reason, where there is no CUDA)."""
    args = bench.parse_args(["--data", str(tiny), "--test-split", "train", "--size", "32", "--batch-size", "1",
                             "--passes", "1", "--views", "1x3", "--test-items", "1"])
    assert args.cost == ["transform", "decoder-resize", "gpu-decode"] and args.cost_workers == [0]
    bench.loader_cost(args, DataSpec.load(tiny), ["pyav", "decord"], ResultsStore(tmp_path), {"crop_size": 32})
    df = pd.read_csv(tmp_path / "data_loading_cost.csv")
    transform = df[df["step"] == "transform"]
    assert list(transform["variant"]) == ["float (before)", "uint8 (after)"]
    assert (transform["loader"] == "vidbench-pyav").all() and (transform["clips"] == 1).all()
    assert (transform["transform_ms_per_clip"] > 0).all() and (transform["cpu_s_per_clip"] > 0).all()
    resize = df[df["step"] == "decoder resize"]
    assert list(resize["loader"]) == ["vidbench-pyav"] * 2 + ["vidbench-decord"] * 2
    assert list(resize["variant"]) == ["transform resize (before)", "decoder resize (after)"] * 2
    assert (resize["views"] == "1x3").all() and (resize["short_side"] == 32).all()
    after = resize[resize["variant"] == "decoder resize (after)"]
    assert ((after["mean_level_diff"] > 0) & (after["mean_level_diff"] < 3)).all()  # another scaler: close, not equal
    gpu = df[df["step"] == "gpu decode"]
    if cuda_problem() is not None:
        assert len(gpu) == 1 and gpu["status"].iloc[0] == "skipped" and pd.isna(gpu["clips_per_s"].iloc[0])
        assert "'torchcodec-cuda' is not usable" in gpu["reason"].iloc[0] and "no CUDA device" in gpu["reason"].iloc[0]
