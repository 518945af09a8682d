"""Data-loading throughput on real-size video (the Kinetics preset): clips per second and CPU
seconds per clip for every decoding backend, raw JPEG frames and a naive loader, with dense 16x4
and uniform 8-segment sampling, 0 / 1 / 2 DataLoader workers; multi-view 4x3 test items decoded
once against each view decoded separately; and, for PyAV, where the time of a clip goes.

    vidbench make-dataset --preset kinetics --out data/kinetics
    PYTHONPATH=. python benchmarks/data_loading.py --data data/kinetics --out results/data_loading_cpu

Loaders (same records, sampler, transform, seeds and DataLoader settings for all):
- ``vidbench-<backend>``: `VideoClipDataset` with decord / torchcodec / pyav, decoding only the
  frames a clip needs (from the keyframe before them);
- ``rawframes``: the same split extracted to JPEG folders (`vidbench extract-frames`, quality 95;
  extraction time and disk size go to environment.json), reading only the clip's JPEGs;
- ``naive-pyav-all-frames``: PyAV decodes and converts every frame of the video, then the clip
  is picked out of them.

Training rows time `--passes` full passes over `--train-split` (the first batch, with worker
start-up, excluded from the wall time); CPU seconds are those of the main process and of its
DataLoader workers (`getrusage` of the process and of its reaped children, read after the workers
have exited), over every clip loaded, the first batch included. Test rows time 4x3 items of
`--test-split`: decode-once (`VideoClipDataset`) and per-view (`multiview_decode.per_view`, each
view decodes its own clip). The PyAV profile (torch.profiler ``record_function`` ranges around
each stage of the same decode as `PyAVSource.get`, checked to give identical frames) goes to
data_loading_profile.csv, with the frames decoded per clip.

The loader's own cost, before and after (`--cost`, rows in <out>/data_loading_cost.csv, one pair
per change, same records, seeds and DataLoader settings within a pair):
- ``transform``: training clips (the first sampling, the first backend) with the float path
  (``ClipTransform(uint8_ops=False)``: whole frames to float, then crop and resize; before) and
  the uint8 path (crop, resize, flip on uint8, then float; after, the default), through the
  loader and the transform alone (``transform_ms_per_clip``, on frames decoded beforehand);
- ``decoder resize``: test items (``--views``) per backend, the short-side resize done by the
  transform (before) or by the decoder (``ClipTransform(decoder_resize=True)``; after), with the
  after item's mean / max difference from the before item in uint8 levels;
- ``gpu decode``: training clips decoded by torchcodec on the CPU (before) and on CUDA
  (``torchcodec-cuda``, 0 workers, frames and transform on the GPU, synchronised per clip;
  after), with the mean difference of the first clip and torchcodec's CPU-fallback status; where
  CUDA or torchcodec is missing, a ``skipped`` row with the one-line reason.

Rows are appended to <out>/data_loading.csv as measured; environment.json sits beside.
"""
from __future__ import annotations

import argparse
import bisect
import gc
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import av
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import RandomResizedCrop

from vidbench.bench.cpu_time import live_cpu_s, own_cpu_s, reaped_children_cpu_s
from vidbench.data import (
    ClipSampler,
    ClipTransform,
    DataSpec,
    VideoClipDataset,
    available_backends,
    build_dataset,
    collate_clips,
)
from vidbench.data.rawframes import extract_frames
from vidbench.data.videoio import PyAVSource, VideoBackendError, check_backend
from vidbench.errors import ConfigError
from vidbench.results import ResultsStore

sys.path.insert(0, str(Path(__file__).resolve().parent))  # multiview_decode.py beside this script
from multiview_decode import per_view  # noqa: E402

SAMPLINGS: Dict[str, ClipSampler] = {
    "dense16x4": ClipSampler(16, 4, "dense"),  # 16 frames 4 apart (Kinetics' usual 16x4)
    "uniform8": ClipSampler(8, 1, "uniform"),  # TSN: one frame from each of 8 segments
}
NAIVE = "naive-pyav-all-frames"
COSTS = ("transform", "decoder-resize", "gpu-decode")


class NaivePyAVDataset(Dataset):
    """Decode and convert every frame of the video with PyAV, then index the clip out of them
    (same seeds, sampler and transform as the clip dataset it wraps)."""

    def __init__(self, clips: VideoClipDataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int, int]:
        record = self.clips.records[index]
        with av.open(record.path) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])  # (N, H, W, C)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.clips.item_seed(index))
            idx = self.clips.sampler.train_indices(len(frames))
            clip = self.clips.transform.train(torch.from_numpy(frames[idx]),
                                              allow_flip=record.label not in self.clips.no_flip_labels)
        return clip, record.label, index


class PerViewDataset(Dataset):
    """Test items built by decoding every view's clip separately (`multiview_decode.per_view`)."""

    def __init__(self, clips: VideoClipDataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int, int]:
        c = self.clips
        record = c.records[index]
        return per_view(record.path, c.backend, c.sampler, c.transform, c.views), record.label, index


def measure(dataset: Dataset, workers: int, batch_size: int, passes: int) -> Dict[str, float]:
    """Clips per second and CPU seconds per clip (main process + DataLoader workers) over
    `passes` shuffled passes, start-up excluded.

    0 workers: the first batch is the warm-up, timing starts when it is back. With workers, a
    first batch back does not mark a clean start (the other workers have clips of their own in
    flight by then), so a whole untimed pass warms the persistent workers up and the timed passes
    start from a fresh epoch iterator, nothing in flight; the workers' CPU over the timed passes is
    read from /proc while they run, and checked against what getrusage counts for them once they
    have exited (their whole life, warm-up included, so at least as much)."""
    per_pass = -(-len(dataset) // batch_size)
    if workers == 0 and passes * per_pass < 2:
        raise ConfigError(f"{len(dataset)} items x --passes {passes} make one batch of {batch_size} at most: "
                          "nothing left to time after the first batch; raise --passes or lower the batch size")
    gc.collect()
    reaped0 = reaped_children_cpu_s()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate_clips, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))

    def batches(source: DataLoader, n_passes: int):
        for _ in range(n_passes):
            for batch in source:
                if batch.bad:
                    raise RuntimeError(f"bad items: {batch.bad}")
                yield len(batch)

    timed = batches(loader, passes)
    if workers > 0:
        warm = sum(batches(loader, 1))
    else:
        warm = next(timed)
    kids = [p.pid for p in multiprocessing.active_children()]
    if len(kids) != workers:
        raise RuntimeError(f"expected {workers} DataLoader workers, found {len(kids)} child processes")
    own0, kid0 = own_cpu_s(), sum(live_cpu_s(pid) for pid in kids)
    start = time.perf_counter()
    clips = sum(timed)
    wall = time.perf_counter() - start
    own, kid = own_cpu_s() - own0, sum(live_cpu_s(pid) for pid in kids) - kid0
    del loader, timed
    gc.collect()  # the persistent workers shut down with their iterator
    for child in multiprocessing.active_children():  # joined, so getrusage counts them
        child.join(30)
    if multiprocessing.active_children():
        raise RuntimeError("DataLoader workers still running: their CPU time would be missed")
    lifetime = reaped_children_cpu_s() - reaped0
    if kid > lifetime + 0.05 * len(kids):  # /proc ticks are 10 ms
        raise RuntimeError(f"workers' CPU over the timed passes ({kid:.2f} s) exceeds their lifetime's ({lifetime:.2f} s)")
    cpu = own + kid
    return {"clips": clips, "warmup_clips": warm, "wall_s": round(wall, 3), "clips_per_s": round(clips / wall, 3),
            "cpu_s": round(cpu, 3), "main_cpu_s": round(own, 3), "worker_cpu_s": round(kid, 3),
            "worker_cpu_s_lifetime": round(lifetime, 3), "cpu_s_per_clip": round(cpu / clips, 4),
            "cores_busy": round(cpu / wall, 2)}


# --- PyAV, stage by stage ------------------------------------------------------------------------

def staged_pyav_get(source: PyAVSource, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
    """`PyAVSource.get`'s decode (seek to the keyframe at or before each needed frame, decode on)
    with each stage in a profiler range: seek, demux (read the next packet), decode (packet to
    YUV frames), colour conversion (YUV 4:2:0 -> RGB24 array, only for needed frames).
    Returns the frames (T, H, W, C) and the number of frames decoded."""
    wanted = sorted(set(indices))
    wanted_set = set(wanted)
    frames: Dict[int, np.ndarray] = {}
    decoded = 0
    with av.open(source.path) as container:
        stream = container.streams.video[0]
        position, packets, pending = -1, None, []
        for target in wanted:
            if target in frames:
                continue
            key = source._keyframes[max(bisect.bisect_right(source._keyframes, target) - 1, 0)]
            if packets is None or key > position + 1:
                with record_function("seek"):
                    container.seek(source._pts[key], stream=stream, backward=True, any_frame=False)
                packets, pending = container.demux(stream), []
            while position < target:
                if not pending:
                    with record_function("demux"):
                        packet = next(packets, None)
                    if packet is None:
                        break
                    with record_function("decode"):
                        pending = list(packet.decode())
                    decoded += len(pending)
                    continue
                frame = pending.pop(0)
                position = source._index.get(frame.pts, -1)
                if position in wanted_set and position not in frames:
                    with record_function("colour conversion"):
                        frames[position] = frame.to_ndarray(format="rgb24")
    return torch.from_numpy(np.stack([frames[i] for i in indices])), decoded


def staged_naive(path: str) -> Tuple[torch.Tensor, int]:
    """Every frame: demux, decode, convert (what `NaivePyAVDataset` does), stage by stage."""
    frames = []
    with record_function("open"):
        container = av.open(path)
    with container:
        packets = container.demux(container.streams.video[0])
        while True:
            with record_function("demux"):
                packet = next(packets, None)
            if packet is None:
                break
            with record_function("decode"):
                decoded = list(packet.decode())
            for frame in decoded:
                with record_function("colour conversion"):
                    frames.append(frame.to_ndarray(format="rgb24"))
    return torch.from_numpy(np.stack(frames)), len(frames)


def staged_train_transform(tf: ClipTransform, frames: torch.Tensor, allow_flip: bool) -> torch.Tensor:
    """`ClipTransform.train` in three ranges (same random draws, same result). The float
    conversion is timed where the transform does it: of the whole frames first (``uint8_ops=False``)
    or of the resized crop (the uint8 path; the first range is then only a view)."""
    with record_function("to float"):
        video = tf._video(frames)
    with record_function("resize (random resized crop)"):
        top, left, h, w = RandomResizedCrop.get_params(video[0], list(tf.scale), list(tf.ratio))
        video = TF.resized_crop(video, top, left, h, w, [tf.size, tf.size], antialias=True)
    with record_function("flip + normalise"):
        if tf.flip and allow_flip and torch.rand(()) < 0.5:
            video = TF.horizontal_flip(video)
    with record_function("to float"):
        video = tf._float(video)  # the uint8 path's conversion; a float video goes through as it is
    with record_function("flip + normalise"):
        video = tf._finish(video)
    return video


STAGES = ("open + index (demux every packet)", "open", "seek", "demux", "decode", "colour conversion", "to float",
          "resize (random resized crop)", "flip + normalise")


def profile_pyav(dataset: VideoClipDataset, naive: bool, clips: int) -> Tuple[Dict[str, float], float, float, float]:
    """Stage seconds over `clips` training items (cycling the split), the total wall seconds,
    frames decoded per clip and frames per video. The first clip is checked against the dataset."""
    def one(index: int) -> Tuple[torch.Tensor, int, int]:
        record = dataset.records[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(dataset.item_seed(index))
            if naive:
                video, decoded = staged_naive(record.path)
                n = len(video)
                frames = video[dataset.sampler.train_indices(n)]
            else:
                with record_function("open + index (demux every packet)"):
                    source = PyAVSource(record.path)
                n = source.num_frames
                frames, decoded = staged_pyav_get(source, dataset.sampler.train_indices(n))
            clip = staged_train_transform(dataset.transform, frames, record.label not in dataset.no_flip_labels)
        return clip, decoded, n

    first = one(0)[0]
    if not torch.equal(first, dataset[0][0]):
        raise RuntimeError("the staged PyAV path does not give the dataset's clip")
    decoded = frames = 0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for k in range(clips):
            _, d, n = one(k % len(dataset))
            decoded, frames = decoded + d, frames + n
        wall = time.perf_counter() - start
    stage_us = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in STAGES}
    return {s: stage_us[s] / 1e6 for s in STAGES if s in stage_us}, wall, decoded / clips, frames / clips


def keyframe_stats(paths: Sequence[str]) -> Tuple[float, float]:
    """Mean keyframes per video and mean frames between keyframes."""
    keys, frames = [], []
    for p in paths:
        s = PyAVSource(p)
        keys.append(len(s._keyframes))
        frames.append(s.num_frames)
    return float(np.mean(keys)), float(np.mean(frames) / np.mean(keys))


# --- the loader's own cost, before and after ------------------------------------------------------

class SyncedDataset(Dataset):
    """Items of a dataset whose clips are built on a CUDA device, each waited for (so the timed
    wall time holds the GPU's work, not only its launch)."""

    def __init__(self, clips: VideoClipDataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        item = self.clips[index]
        torch.cuda.synchronize()
        return item


def level_diff(before: torch.Tensor, after: torch.Tensor, tf: ClipTransform) -> Tuple[float, float]:
    """Mean and max |after - before| of normalised clips (..., C, T, H, W), in uint8 levels."""
    std = torch.tensor(tf.std, device=after.device)[:, None, None, None]
    levels = (after.float() - before.to(after.device).float()).abs() * std * 255
    return round(float(levels.mean()), 3), round(float(levels.max()), 2)


def transform_ms_per_clip(dataset: VideoClipDataset, clips: int) -> float:
    """The training transform alone: ms per clip over `clips` clips of frames decoded beforehand."""
    frames = []
    for k in range(clips):
        record = dataset.records[k % len(dataset)]
        video = dataset._open(record)
        frames.append(video.get(dataset.sampler.train_indices(video.num_frames)))
    torch.manual_seed(0)
    start = time.perf_counter()
    for f in frames:
        dataset.transform.train(f)
    return round(1e3 * (time.perf_counter() - start) / clips, 3)


def loader_cost(args: argparse.Namespace, spec: DataSpec, backends: Sequence[str], store: ResultsStore,
                common: Dict[str, Any]) -> Dict[Tuple[str, str, str], Dict[str, Any]]:
    """The before / after pairs of `--cost` (see the module's notes), appended to data_loading_cost.csv."""
    sampling = args.sampling[0]
    sampler, out = SAMPLINGS[sampling], {}

    def build(split: str, train: bool, backend: str, **tf: Any) -> VideoClipDataset:
        views = (1, 1) if train else args.views
        dataset = build_dataset(spec, split, train, views=views, sampler=sampler, backend=backend, bad_items="raise",
                                transform=ClipTransform(size=args.size, **tf))[0]
        if not train and args.test_items:
            dataset.records = dataset.records[:args.test_items]
        return dataset

    def row(step: str, variant: str, backend: str, train: bool, workers: int, m: Dict[str, Any], **extra: Any):
        views = "1x1" if train else f"{args.views[0]}x{args.views[1]}"
        r = {"step": step, "variant": variant, "loader": f"vidbench-{backend}", "sampling": sampling, "views": views,
             "workers": workers, "batch_size": args.batch_size if train else 1, "status": "ok", "reason": "",
             **m, **extra, **common, "split": args.train_split if train else args.test_split}
        store.append("data_loading_cost", r)
        out[(step, variant, backend)] = r
        rate = f"{m['clips_per_s']:7.2f} clips/s {m['cpu_s_per_clip']:.3f} CPU s/clip" if m else r["reason"]
        print(f"cost {step:15s} {variant:24s} {backend:16s} workers={workers}  {rate}")

    if "transform" in args.cost:
        for workers in args.cost_workers:
            for variant, uint8 in (("float (before)", False), ("uint8 (after)", True)):
                dataset = build(args.train_split, True, backends[0], uint8_ops=uint8)
                row("transform", variant, backends[0], True, workers, measure(dataset, workers, args.batch_size,
                                                                              args.passes),
                    transform_ms_per_clip=transform_ms_per_clip(dataset, max(len(dataset), 4)))
    if "decoder-resize" in args.cost and args.views != "none":
        for backend in backends:
            first = {}
            for variant, decoder in (("transform resize (before)", False), ("decoder resize (after)", True)):
                dataset = build(args.test_split, False, backend, decoder_resize=decoder)
                first[variant] = dataset[0][0]
                extra = {"short_side": dataset.transform.test_short_side}
                if decoder:
                    mean, worst = level_diff(first["transform resize (before)"], first[variant], dataset.transform)
                    extra.update(mean_level_diff=mean, max_level_diff=worst)
                row("decoder resize", variant, backend, False, 0,
                    measure(dataset, 0, 1, 2 if len(dataset) == 1 else 1), **extra)
    if "gpu-decode" in args.cost:
        try:
            check_backend("torchcodec-cuda")
        except VideoBackendError as err:
            row("gpu decode", "torchcodec-cuda (after)", "torchcodec-cuda", True, 0, {}, status="skipped",
                reason=str(err))
        else:
            cpu = build(args.train_split, True, "torchcodec")
            gpu = build(args.train_split, True, "torchcodec-cuda")
            mean, worst = level_diff(cpu[0][0], gpu[0][0], gpu.transform)
            source = gpu._open(gpu.records[0])
            source.get([0])  # torchcodec knows whether NVDEC fell back to the CPU once it has decoded
            fallback = " ".join(str(source._decoder.cpu_fallback).split())
            row("gpu decode", "torchcodec cpu (before)", "torchcodec", True, 0,
                measure(cpu, 0, args.batch_size, args.passes))
            row("gpu decode", "torchcodec-cuda (after)", "torchcodec-cuda", True, 0,
                measure(SyncedDataset(gpu), 0, args.batch_size, args.passes), mean_level_diff=mean,
                max_level_diff=worst, cpu_fallback=fallback, device=torch.cuda.get_device_name(0))
    return out


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/kinetics")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--backends", nargs="+", default=None, help="default: every backend that works here")
    parser.add_argument("--sampling", nargs="+", default=list(SAMPLINGS), choices=list(SAMPLINGS))
    parser.add_argument("--loaders", nargs="+", default=["vidbench", "rawframes", "naive"],
                        choices=["vidbench", "rawframes", "naive"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2,
                        help="timed passes over the train split per measurement (after the first batch with 0 "
                             "workers, after one untimed pass with workers)")
    parser.add_argument("--size", type=int, default=224, help="crop size")
    parser.add_argument("--views", default="4x3", help="test views (temporal clips x crops); 'none' skips them")
    parser.add_argument("--test-items", type=int, default=0, help="test items per multi-view measurement (0: all)")
    parser.add_argument("--test-workers", type=int, nargs="+", default=[0])
    parser.add_argument("--profile-clips", type=int, default=14, help="clips per PyAV profile (0: no profile)")
    parser.add_argument("--cost", nargs="*", default=list(COSTS), choices=COSTS,
                        help="the loader's own cost, before / after pairs (data_loading_cost.csv); none: --cost")
    parser.add_argument("--cost-workers", type=int, nargs="+", default=[0],
                        help="DataLoader workers of the transform pairs")
    parser.add_argument("--rawframes", default=None,
                        help="frame folders to use or extract into (default: a temporary folder, removed after)")
    parser.add_argument("--out", default="results/data_loading")
    args = parser.parse_args(argv)
    if args.views != "none":
        try:
            args.views = tuple(int(v) for v in args.views.split("x"))
            assert len(args.views) == 2
        except (ValueError, AssertionError):
            raise ConfigError(f"--views must look like 4x3 (or none), got {args.views!r}") from None
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    spec = DataSpec.load(args.data)
    backends = args.backends or available_backends()
    store = ResultsStore(args.out)
    env: Dict[str, Any] = {"benchmark": "data_loading", "argv": ["benchmarks/data_loading.py", *sys.argv[1:]],
                           "backends": backends, "crop_size": args.size, "batch_size": args.batch_size,
                           "passes": args.passes, "multiprocessing_start_method": multiprocessing.get_start_method()}
    train_records = spec.records(args.train_split, on_error="raise")[0]
    env["keyframes_per_video"], env["frames_per_gop"] = (round(x, 2) for x in keyframe_stats([r.path for r in train_records]))
    env["frames_per_video"] = PyAVSource(train_records[0].path).num_frames
    store.write_environment("cpu", env)
    common = {"crop_size": args.size, "data": args.data}

    raw_dir: Optional[Path] = None
    temporary = None
    if "rawframes" in args.loaders:
        if args.rawframes:
            raw_dir = Path(args.rawframes)
        else:
            temporary = tempfile.mkdtemp(prefix="vidbench_rawframes_")
            raw_dir = Path(temporary)
        splits = sorted({args.train_split} | ({args.test_split} if args.views != "none" else set()))
        if not (raw_dir / "dataset.json").exists():
            start = time.perf_counter()
            _, frames, problems, _ = extract_frames(spec, raw_dir, splits=splits, quality=95, workers=0)
            if problems:
                raise RuntimeError(f"extract-frames: {problems[0]}")
            env["rawframes_extract_s"] = round(time.perf_counter() - start, 1)
            env["rawframes_frames"] = int(sum(frames.values()))
        env["rawframes_mb"] = round(sum(f.stat().st_size for f in raw_dir.rglob("*.jpg")) / 1e6, 1)
        env["video_mb"] = round(sum(Path(r.path).stat().st_size for s in splits
                                    for r in spec.records(s, on_error="raise")[0]) / 1e6, 1)
        env["rawframes_splits"] = splits
        store.write_environment("cpu", env)
        took = f"{env['rawframes_extract_s']} s to extract" if "rawframes_extract_s" in env else "already extracted"
        print(f"raw frames: {took}, {env['rawframes_mb']} MB of JPEGs vs {env['video_mb']} MB of video ({raw_dir})")
    raw_spec = DataSpec.load(raw_dir) if raw_dir is not None else None

    results: Dict[str, Any] = {"train": {}, "test": {}, "profile": {}, "cost": {}}
    try:
        # training clips: every loader x sampling x workers
        for sampling in args.sampling:
            sampler = SAMPLINGS[sampling]

            def train_set(backend: Optional[str], s: DataSpec = spec, sm: ClipSampler = sampler) -> VideoClipDataset:
                return build_dataset(s, args.train_split, True, sampler=sm, size=args.size, backend=backend,
                                     bad_items="raise")[0]

            loaders: Dict[str, Callable[[], Dataset]] = {}
            if "vidbench" in args.loaders:
                loaders.update({f"vidbench-{b}": (lambda b=b: train_set(b)) for b in backends})
            if "rawframes" in args.loaders:
                loaders["rawframes"] = lambda: train_set(None, raw_spec)
            if "naive" in args.loaders:
                loaders[NAIVE] = lambda: NaivePyAVDataset(train_set("pyav"))
            for workers in args.workers:
                for name, make in loaders.items():
                    m = measure(make(), workers, args.batch_size, args.passes)
                    row = {"loader": name, "sampling": sampling, "views": "1x1", "decode": "clip", "workers": workers,
                           "batch_size": args.batch_size, **m, **common, "split": args.train_split}
                    store.append("data_loading", row)
                    results["train"][(name, sampling, workers)] = m
                    print(f"{sampling:9s} {name:24s} workers={workers}  {m['clips_per_s']:7.2f} clips/s  "
                          f"{m['cpu_s_per_clip']:.3f} CPU s/clip  ({m['clips']} timed)")
            for workers in args.workers:
                naive = results["train"].get((NAIVE, sampling, workers))
                for (name, s, w), m in results["train"].items():
                    if naive and s == sampling and w == workers and name != NAIVE:
                        print(f"target ({sampling}, {workers} workers): {name} / naive = "
                              f"{m['clips_per_s'] / naive['clips_per_s']:.2f}x clips/s, "
                              f"{naive['cpu_s_per_clip'] / m['cpu_s_per_clip']:.2f}x less CPU per clip")

        dense = {k: m for k, m in results["train"].items() if k[1] == "dense16x4" and k[0].startswith("vidbench-")}
        if dense:
            most = max(k[2] for k in dense)
            key = min((k for k in dense if k[2] == most), key=lambda k: dense[k]["cpu_s_per_clip"])
            c = dense[key]["cpu_s_per_clip"]
            print(f"cores per GPU = {c:.3f} CPU s per dense 16x4 clip ({key[0]}, {most} workers) x clips per step / "
                  f"step time in s (e.g. {c / 0.01:.1f} cores at 10 ms of GPU time per training clip)")

        # multi-view test items: decode once vs each view separately
        if args.views != "none":
            views = f"{args.views[0]}x{args.views[1]}"
            for sampling in args.sampling:
                for workers in args.test_workers:
                    for backend in backends:
                        once = build_dataset(spec, args.test_split, False, views=args.views, sampler=SAMPLINGS[sampling],
                                             size=args.size, backend=backend, bad_items="raise")[0]
                        if args.test_items:
                            once.records = once.records[:args.test_items]
                        pair = {}
                        for decode, dataset in (("once", once), ("per-view", PerViewDataset(once))):
                            m = measure(dataset, workers, 1, 2 if len(dataset) == 1 and workers == 0 else 1)
                            pair[decode] = m
                            store.append("data_loading", {"loader": f"vidbench-{backend}", "sampling": sampling,
                                                          "views": views, "decode": decode, "workers": workers,
                                                          "batch_size": 1, **m, **common, "split": args.test_split})
                        speedup = pair["once"]["clips_per_s"] / pair["per-view"]["clips_per_s"]
                        results["test"][(backend, sampling, workers)] = speedup
                        print(f"{sampling:9s} {views} test items, {backend:10s} workers={workers}: decode-once "
                              f"{pair['once']['clips_per_s']:.3f} items/s vs per-view "
                              f"{pair['per-view']['clips_per_s']:.3f} items/s: {speedup:.2f}x "
                              f"(CPU s/item {pair['once']['cpu_s_per_clip']:.2f} vs {pair['per-view']['cpu_s_per_clip']:.2f})")

        # where the time goes: PyAV, stage by stage
        if args.profile_clips > 0:
            for sampling in args.sampling:
                dataset = build_dataset(spec, args.train_split, True, sampler=SAMPLINGS[sampling], size=args.size,
                                        backend="pyav", bad_items="raise")[0]
                for loader, naive in (("vidbench-pyav", False), (NAIVE, True)):
                    stages, wall, decoded, frames = profile_pyav(dataset, naive, args.profile_clips)
                    other = max(wall - sum(stages.values()), 0.0)
                    for stage, seconds in [*stages.items(), ("other (stacking frames, Python, profiler)", other)]:
                        store.append("data_loading_profile", {
                            "loader": loader, "sampling": sampling, "stage": stage, "seconds": round(seconds, 4),
                            "share": round(seconds / wall, 4), "ms_per_clip": round(1e3 * seconds / args.profile_clips, 2),
                            "clips": args.profile_clips, "frames_decoded_per_clip": round(decoded, 1),
                            "frames_needed_per_clip": SAMPLINGS[sampling].num_frames,
                            "frames_per_video": round(frames, 1), "data": args.data})
                    results["profile"][(loader, sampling)] = (stages, wall, decoded)
                    print(f"profile {sampling} {loader}: {decoded:.0f} frames decoded per clip of "
                          f"{SAMPLINGS[sampling].num_frames} (of {frames:.0f}); " + ", ".join(
                              f"{s} {v / wall:.0%}" for s, v in stages.items()))
        if args.cost:
            results["cost"] = loader_cost(args, spec, backends, store, common)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
