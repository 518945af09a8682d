"""Data-loading throughput: vidbench's clip pipeline (decord or PyAV, seeking only the frames a
clip needs) against a naive loader that decodes every frame with PyAV and then picks the clip.
Same files, same sampler and transforms, same DataLoader; clips per second over full passes.

    python benchmarks/data_loading.py --data data/synthetic --workers 0 2 --out results/data_loading

Rows go to <out>/data_loading.csv (one per loader x worker count) with environment.json beside.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Tuple

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidbench.data import DataSpec, VideoClipDataset, build_dataset, collate_clips
from vidbench.results import ResultsStore


class NaivePyAVDataset(Dataset):
    """Decode every frame of the video with PyAV, then index the clip out of them."""

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
            clip = self.clips.transform.train(torch.from_numpy(frames[idx]))
        return clip, record.label, index


def throughput(dataset: Any, workers: int, batch_size: int, passes: int) -> Tuple[float, int]:
    """Clips per second over `passes` full passes (the first batch, with worker start-up, excluded)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate_clips, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))
    clips, start = 0, None
    for _ in range(passes):
        for batch in loader:
            if start is None:  # warm-up batch
                start = time.perf_counter()
                continue
            clips += len(batch)
    return clips / (time.perf_counter() - start), clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--split", default="train")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=2, help="full passes over the split per measurement")
    parser.add_argument("--out", default="results/data_loading")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = DataSpec.load(args.data)
    store = ResultsStore(args.out)
    store.write_environment("cpu", {"benchmark": "data_loading"})
    loaders = {
        "vidbench-decord": build_dataset(spec, args.split, True, backend="decord", bad_items="raise")[0],
        "vidbench-pyav": build_dataset(spec, args.split, True, backend="pyav", bad_items="raise")[0],
    }
    loaders["naive-pyav-all-frames"] = NaivePyAVDataset(loaders["vidbench-pyav"])
    for workers in args.workers:
        for name, dataset in loaders.items():
            rate, clips = throughput(dataset, workers, args.batch_size, args.passes)
            row = {"loader": name, "workers": workers, "batch_size": args.batch_size, "clips": clips,
                   "clips_per_s": round(rate, 1), "data": args.data, "split": args.split}
            store.append("data_loading", row)
            print(f"{name:24s} workers={workers}  {rate:8.1f} clips/s  ({clips} clips)")


if __name__ == "__main__":
    main()
