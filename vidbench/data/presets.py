"""The generated action dataset at the size, encoding and layout of a real dataset.

`make_preset_dataset(out, "kinetics")` writes the synthetic classes (vidbench.data.synthetic) as
Kinetics-400 videos: 10 s at 30 fps, short side 256 (340 x 256 or 454 x 256), H.264 with
keyframes about every 250 frames and B-frames (libx264, CRF 23), laid out as the dataset is
distributed: ``{train,val,test}/<class>/<youtube_id>_<start:06d>_<end:06d>.mp4`` with
``train.csv`` / ``validate.csv`` / ``test.csv`` (``label,youtube_id,time_start,time_end,split``).

`make_preset_dataset(out, "ssv2")` writes them as Something-Something v2: VP9 WebM, 12 fps,
height 240, 2-6 s (drawn per video), ``20bn-something-something-v2/<id>.webm`` with
``labels.json`` ({template: "index"}), ``train.json`` / ``validation.json`` (lists of
{"id", "label", "template", "placeholders"}) and, as in the real release, an unlabelled
``test.json`` ({"id"} only) whose answers are in ``test-answers.csv`` (``id;label``).

Both also get vidbench's ``dataset.json`` (class groups, mirror-sensitive classes, default clip
sampling) beside the real files; without it the directory still reads by convention.
"""
from __future__ import annotations

import csv
import json
import math
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError
from ..results import building
from .synthetic import SyntheticClass, check_video_memory, render_video, select_classes
from .videoio import PathLike, encode_rgb

__all__ = ["PRESETS", "Preset", "SSV2_TEMPLATES", "encode_video", "make_preset_dataset"]


@dataclass(frozen=True)
class Preset:
    name: str
    fps: int
    duration_s: Tuple[float, float]  # drawn uniformly per video (equal bounds: fixed)
    short_side: int
    aspects: Tuple[float, ...]  # width / height, one drawn per video
    codec: str  # "h264" or "vp9"
    action_s: Optional[float]  # length of one repeat of the class's action (None: the whole video)
    clip: Tuple[int, int, str]  # default clip: frames, stride, sampling mode
    videos_per_class: int = 3
    val_fraction: float = 0.15
    test_fraction: float = 0.15


PRESETS: Dict[str, Preset] = {
    # 340 x 256 (4:3) and 454 x 256 (16:9, even for 4:2:0), as the common short-side-256 copies
    "kinetics": Preset("kinetics", 30, (10.0, 10.0), 256, (340 / 256, 454 / 256), "h264", 2.5, (16, 4, "dense")),
    # Something-Something v2: 240 rows; one action per video (an SSv2 video is one action)
    "ssv2": Preset("ssv2", 12, (2.0, 6.0), 240, (320 / 240, 426 / 240), "vp9", None, (16, 1, "uniform")),
}

# Something-Something v2 names a class by its template; the label is the template filled in.
SSV2_TEMPLATES: Dict[str, Tuple[str, List[str]]] = {
    "red_disc": ("Moving [something red and round] around", ["red disc"]),
    "green_square": ("Moving [something green and square] around", ["green square"]),
    "blue_triangle": ("Moving [something blue and triangular] around", ["blue triangle"]),
    "striped_square": ("Moving [something striped] around", ["striped square"]),
    "move_right": ("Moving [something] from left to right", ["yellow disc"]),
    "move_left": ("Moving [something] from right to left", ["yellow disc"]),
    "move_down": ("Moving [something] down", ["cyan square"]),
    "move_up": ("Moving [something] up", ["cyan square"]),
    "rotate_cw": ("Turning [something] clockwise", ["clock hand"]),
    "rotate_ccw": ("Turning [something] counterclockwise", ["clock hand"]),
    "grow": ("Approaching [something] with your camera", ["magenta disc"]),
    "shrink": ("Moving away from [something] with your camera", ["magenta disc"]),
    "a_then_b": ("Replacing [something] with [something]", ["orange disc", "purple square"]),
    "b_then_a": ("Swapping [something] back for [something]", ["purple square", "orange disc"]),
}
KINETICS_SPLITS = (("train", "train.csv", "train"), ("val", "validate.csv", "val"), ("test", "test.csv", "test"))
SSV2_SPLITS = (("train", "train.json"), ("val", "validation.json"), ("test", "test.json"))
SSV2_VIDEOS = "20bn-something-something-v2"


def ssv2_name(template: str) -> str:
    """The class name of an SSv2 template (labels.json's key): the template without brackets."""
    return template.replace("[", "").replace("]", "")


def _fill(template: str, placeholders: List[str]) -> str:
    parts = template.split("[")
    out = parts[0]
    for value, part in zip(placeholders, parts[1:]):
        out += value + part.split("]", 1)[1]
    return out


def encode_video(path: PathLike, frames: np.ndarray, fps: int, codec: str, seed: int = 0) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) as a real dataset's files are encoded.

    h264: MP4, libx264 CRF 23 (preset medium, mbtree off), keyframes at most every 250 frames (more
    at scene cuts), up to 3 consecutive B-frames, yuv420p. vp9: WebM, libvpx-vp9 constant quality (CRF 32), yuv420p.
    Single-threaded and, for H.264, without x264's macroblock-tree rate control (with it, encoding
    the same frames twice in one process gave different bytes about half the time), so the same
    frames give the same bytes.
    """
    if codec == "h264":
        return encode_rgb(path, frames, fps, "mp4", "libx264", {"fflags": "+bitexact"},  # bitexact: no random ids
                          {"crf": "23", "preset": "medium", "threads": "1",
                           "x264-params": "keyint=250:min-keyint=25:bframes=3:mbtree=0"}, gop_size=250, max_b_frames=3)
    if codec == "vp9":
        return encode_rgb(path, frames, fps, "webm", "libvpx-vp9", {"fflags": "+bitexact"},
                          {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4", "threads": "1"})
    raise ValueError(f"unknown codec {codec!r}; choose h264 or vp9")


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> Dict[str, int]:
    """At least one validation video from 2 per class and one test video from 3, so every split
    of a small preset dataset is used."""
    n_val = max(1 if n >= 2 else 0, round(n * val_fraction))
    n_test = max(1 if n >= 3 else 0, round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} videos per class leave none for training")
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _youtube_id(rng: np.random.Generator) -> str:
    alphabet = np.array(list(string.ascii_letters + string.digits + "-_"))
    return "".join(rng.choice(alphabet, size=11))


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


@dataclass(frozen=True)
class _Video:
    cls: SyntheticClass
    index: int
    split: str
    frames: int
    height: int
    width: int
    rng_state: int  # for the per-video names (youtube id, start time)


def _plan(preset: Preset, chosen: List[SyntheticClass], videos_per_class: int, seed: int) -> List[_Video]:
    counts = _split_counts(videos_per_class, preset.val_fraction, preset.test_fraction)
    plan = []
    for cls in chosen:
        for index in range(videos_per_class):
            rng = np.random.default_rng([seed, cls.seed_key, index, 1])  # apart from render_video's stream
            duration = rng.uniform(*preset.duration_s)
            aspect = preset.aspects[int(rng.integers(len(preset.aspects)))]
            split = "train" if index < counts["train"] else "val" if index < counts["train"] + counts["val"] else "test"
            plan.append(_Video(cls, index, split, max(2, round(duration * preset.fps)), preset.short_side,
                               _even(preset.short_side * aspect), int(rng.integers(2**31))))
    return plan


def _clip(preset: Preset, min_frames: int) -> Dict[str, object]:
    frames, stride, mode = preset.clip
    frames = min(frames, min_frames)
    if mode == "dense":
        stride = max(1, min(stride, (min_frames - 1) // max(1, frames - 1)))
    # 224 crops from real-size frames, as Kinetics / SSv2 models take; proportionally smaller below
    size = 224 if preset.short_side >= 224 else max(8, 8 * round(preset.short_side * 224 / 256 / 8))
    return {"num_frames": frames, "stride": stride, "mode": mode, "size": size}


def make_preset_dataset(out: PathLike, preset: str = "kinetics", classes: Optional[List[str]] = None,
                        videos_per_class: Optional[int] = None, duration_s: Optional[float] = None,
                        short_side: Optional[int] = None, fps: Optional[int] = None, seed: int = 0,
                        progress: bool = False) -> Path:
    """Write the synthetic classes as a `preset` ("kinetics", "ssv2") dataset under `out`.

    `duration_s`, `short_side` and `fps` override the preset's (a fixed duration replaces SSv2's
    2-6 s draw). The same arguments give byte-identical files.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown dataset preset {preset!r}; choose from {sorted(PRESETS)}")
    p = PRESETS[preset]
    if duration_s is not None:
        if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
            raise ConfigError(f"--duration-s must be a finite number of seconds > 0, got {duration_s}")
        p = replace(p, duration_s=(duration_s, duration_s))
    if short_side is not None:
        if short_side < 16 or short_side % 2:
            raise ConfigError(f"--short-side must be even and >= 16, got {short_side}")
        p = replace(p, short_side=short_side)
    for name, value in (("--fps", fps), ("--videos-per-class", videos_per_class)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    p = replace(p, fps=fps or p.fps, videos_per_class=videos_per_class or p.videos_per_class)
    chosen = select_classes(classes)  # an unknown or repeated --classes name: one line at the CLI
    longest = max(2, round(p.duration_s[1] * p.fps))
    check_video_memory(longest, p.short_side, _even(p.short_side * max(p.aspects)), f"--preset {p.name}")
    plan = _plan(p, chosen, p.videos_per_class, seed)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset.json").exists():
        raise FileExistsError(f"{out} is not empty and holds no generated dataset: choose another --out")
    # built beside `out` and moved into place whole (a previous generation is replaced only then):
    # a full disk or a kill leaves no half-made dataset
    with building(out) as tmp:
        action = None if p.action_s is None else max(2, round(p.action_s * p.fps))
        writer = _write_kinetics if p.codec == "h264" else _write_ssv2
        names = writer(tmp, p, plan, action, seed, progress)
        meta = {
            "name": f"vidbench-synthetic-{p.name}", "format": 1, "layout": p.name, "classes": names["classes"],
            "groups": {names["of"][c.name]: c.group for c in chosen},
            "no_flip": [names["of"][c.name] for c in chosen if c.mirror_sensitive],
            "splits": names["splits"], "clip": _clip(p, min(v.frames for v in plan)),
            "generator": {"preset": p.name, "synthetic_classes": {names["of"][c.name]: c.name for c in chosen},
                          "videos_per_class": p.videos_per_class, "fps": p.fps, "duration_s": list(p.duration_s),
                          "short_side": p.short_side, "action_frames": action, "seed": seed,
                          "codec": ("h264 (libx264), CRF 23, keyint 250, 3 B-frames" if p.codec == "h264"
                                    else "vp9 (libvpx-vp9), CRF 32")},
        }
        if "label_map" in names:
            meta["label_map"] = names["label_map"]
        if "video_root" in names:
            meta["video_root"] = names["video_root"]
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _render(v: _Video, action: Optional[int], seed: int) -> np.ndarray:
    return render_video(v.cls, v.index, v.frames, v.height, seed, width=v.width, action_frames=action)


def _write_kinetics(out: Path, p: Preset, plan: List[_Video], action: Optional[int], seed: int,
                    progress: bool) -> Dict[str, object]:
    rows: Dict[str, List[List[object]]] = {split: [] for split, _, _ in KINETICS_SPLITS}
    folder = {split: directory for split, _, directory in KINETICS_SPLITS}
    for v in tqdm(plan, desc="videos", disable=not progress):
        rng = np.random.default_rng(v.rng_state)
        start = int(rng.integers(0, 300))
        end = start + math.ceil(v.frames / p.fps)
        youtube_id = _youtube_id(rng)
        encode_video(out / folder[v.split] / v.cls.name / f"{youtube_id}_{start:06d}_{end:06d}.mp4",
                     _render(v, action, seed), p.fps, "h264")
        rows[v.split].append([v.cls.name, youtube_id, start, end, folder[v.split]])
    splits = {}
    for split, filename, _ in KINETICS_SPLITS:
        with open(out / filename, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            w.writerows(rows[split])
        if rows[split]:
            splits[split] = filename
    names = sorted({v.cls.name for v in plan})  # Kinetics numbers its classes in sorted order
    return {"classes": names, "of": {v.cls.name: v.cls.name for v in plan}, "splits": splits}


def _write_ssv2(out: Path, p: Preset, plan: List[_Video], action: Optional[int], seed: int,
                progress: bool) -> Dict[str, object]:
    of = {v.cls.name: ssv2_name(SSV2_TEMPLATES[v.cls.name][0]) for v in plan}
    names = sorted(set(of.values()))
    ids = np.random.default_rng([seed, 2]).permutation(len(plan)) + 1  # shuffled, as the real numbering
    entries: Dict[str, List[Dict[str, object]]] = {split: [] for split, _ in SSV2_SPLITS}
    answers = []
    for v, vid in tqdm(list(zip(plan, ids)), desc="videos", disable=not progress):
        encode_video(out / SSV2_VIDEOS / f"{vid}.webm", _render(v, action, seed), p.fps, "vp9")
        template, placeholders = SSV2_TEMPLATES[v.cls.name]
        if v.split == "test":  # unlabelled, as released; the answers apart
            entries["test"].append({"id": str(vid)})
            answers.append(f"{vid};{of[v.cls.name]}\n")
        else:
            entries[v.split].append({"id": str(vid), "label": _fill(template, placeholders),
                                     "template": template, "placeholders": placeholders})
    (out / "labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(names)}, indent=1) + "\n")
    splits = {}
    for split, filename in SSV2_SPLITS:
        (out / filename).write_text(json.dumps(entries[split], indent=1) + "\n")
        if entries[split]:
            splits[split] = filename
    (out / "test-answers.csv").write_text("".join(answers))
    return {"classes": names, "of": of, "splits": splits, "label_map": "labels.json", "video_root": SSV2_VIDEOS}
