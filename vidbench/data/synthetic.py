"""A generated action dataset that separates models which use time from models which do not.

Static classes differ only in the appearance of a moving object (shape, colour, texture); each
moves in a random direction, so motion says nothing about the class. Temporal classes come in
pairs that differ only in the order of their frames: every video of the second class of a pair
is a video drawn from the first class's generator, played backwards (left/right, down/up,
clockwise/counter-clockwise, growing/shrinking, A-then-B/B-then-A). The set of frames of a video
therefore has the same distribution in both classes of a pair, and a model that averages over
frames (or any function of the unordered frames) is at chance (50%) within the pair, whatever it
learns. The pairs look different from each other and from the static classes, so such a model can
still tell which pair a video belongs to.

The videos are H.264 with every frame a keyframe at a constant quantiser, so each frame's encoding
depends on that frame alone (reversal does not change the decoded frames), and odd lengths keep the
centred test clips symmetric under reversal.
"""
from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError
from ..options import check_fields, option
from ..results import building
from .videoio import PathLike, write_mp4

__all__ = ["CLASSES", "DEFAULT_CLASSES", "SyntheticClass", "SyntheticOptions", "action_spans", "check_video_memory",
           "make_dataset", "render_video"]

Rng = np.random.Generator
Colour = Tuple[float, float, float]


class Canvas:
    """Anti-aliased shapes painted over a plain background, frames (T, H, W, 3) of `height` x
    `width` (default square, `size` x `size`). `size` is the short side: object sizes and speeds
    are fractions of it, so the videos look the same at any resolution.

    Painting is recorded and `finish` renders one frame at a time (each shape only inside its
    bounding box, where its coverage is not zero), so a 300-frame 340 x 256 video needs one
    float frame in memory, not 300.
    """

    def __init__(self, frames: int, size: int, rng: Rng, width: Optional[int] = None):
        self.height, self.width = size, width or size
        self.size, self.frames, self.rng = min(self.height, self.width), frames, rng
        self.extent = np.array([self.width, self.height], dtype=np.float64)  # x, y
        self.unit = max(1.0, self.size / 32)  # line widths and stripe periods grow past the 32-pixel original
        self.background = rng.uniform(0, 60, size=3)
        self.offset = 0  # first frame of the action being drawn (actions can repeat along a video)
        self._ops: List[List[Tuple[Shape, np.ndarray]]] = [[] for _ in range(frames)]
        yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float64) + 0.5  # pixel centres
        self.xx, self.yy = xx, yy

    def paint(self, t: int, shape: Shape, colour: Colour) -> None:
        self._ops[self.offset + t].append((shape, np.asarray(colour)))

    def shape(self, kind: str, cx: float, cy: float, r: float, angle: float = 0.0) -> Shape:
        """A disc, square, triangle, stripes (a striped square) or hand (a bar from (cx, cy) at
        `angle`, length r), centred at (cx, cy) with radius r."""
        if kind not in ("disc", "square", "stripes", "triangle", "hand"):
            raise ValueError(f"unknown shape {kind!r}")
        return Shape(kind, float(cx), float(cy), float(r), float(angle))

    def coverage(self, shape: Shape, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        """Coverage in [0, 1] of `shape` over the pixels [ys, xs]."""
        kind, cx, cy, r, angle = shape
        dx, dy = self.xx[ys, xs] - cx, self.yy[ys, xs] - cy
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        if kind == "disc":
            dist = np.hypot(dx, dy) - r
        elif kind in ("square", "stripes"):
            dist = np.maximum(np.abs(u), np.abs(v)) - r
        elif kind == "triangle":
            normals = [(np.cos(a), np.sin(a)) for a in (np.pi / 2 + angle + k * 2 * np.pi / 3 for k in range(3))]
            dist = np.max([nx * dx + ny * dy for nx, ny in normals], axis=0) - r / 2
        else:  # hand
            dist = np.maximum(np.abs(u - r / 2) - r / 2, np.abs(v) - 2.5 * self.unit)
        alpha = np.clip(0.5 - dist, 0.0, 1.0)
        if kind == "stripes":
            alpha = alpha * (np.sin(u * 1.6 / self.unit) > 0)
        return alpha

    def _box(self, shape: Shape) -> Tuple[slice, slice]:
        """Pixels outside these rows/columns are not covered (coverage exactly 0): every shape
        lies within 1.5 r (+ the hand's half width) of its centre."""
        reach = 1.5 * shape.r + 2.5 * self.unit + 2
        return (slice(max(0, int(shape.cy - reach)), max(0, int(shape.cy + reach) + 1)),
                slice(max(0, int(shape.cx - reach)), max(0, int(shape.cx + reach) + 1)))

    def finish(self, noise: float = 4.0) -> np.ndarray:
        """uint8 frames: the painted shapes plus Gaussian pixel noise (drawn frame by frame, the
        same numbers as one draw for the whole video)."""
        out = np.empty((self.frames, self.height, self.width, 3), dtype=np.uint8)
        for t, ops in enumerate(self._ops):
            frame = np.broadcast_to(self.background, (self.height, self.width, 3)).copy()
            for shape, colour in ops:
                ys, xs = self._box(shape)
                a = self.coverage(shape, ys, xs)[..., None]
                frame[ys, xs] = frame[ys, xs] * (1 - a) + colour * a
            frame += self.rng.normal(0, noise, size=frame.shape)
            out[t] = np.clip(np.round(frame), 0, 255)
        return out


class Shape(NamedTuple):
    kind: str
    cx: float
    cy: float
    r: float
    angle: float


def _jitter(rng: Rng, colour: Colour, amount: float = 20.0) -> Colour:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in colour)


def _linear_path(rng: Rng, frames: int, extent: np.ndarray, r: float, velocity: Tuple[float, float]) -> np.ndarray:
    """Centres (T, 2) moving at `velocity` px/frame, starting where the object stays in view of a
    frame `extent` = (width, height) pixels."""
    travel = np.asarray(velocity) * (frames - 1)
    lo = r + np.maximum(0, -travel)
    hi = extent - r - np.maximum(0, travel)
    start = rng.uniform(lo, np.maximum(lo, hi))
    return start + np.outer(np.arange(frames), velocity)


def _static(kind: str, colour: Colour) -> Callable[[Canvas, int, Rng], None]:
    """An object of one appearance moving in a random direction at a random speed."""

    def draw(canvas: Canvas, frames: int, rng: Rng) -> None:
        s = canvas.size
        r = rng.uniform(0.14, 0.2) * s
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.0, 0.6) * s / (frames - 1)
        path = _linear_path(rng, frames, canvas.extent, r, (speed * np.cos(angle), speed * np.sin(angle)))
        col, tilt = _jitter(rng, colour), rng.uniform(0, 2 * np.pi) if kind != "triangle" else 0.0
        for t, (cx, cy) in enumerate(path):
            canvas.paint(t, canvas.shape(kind, cx, cy, r, tilt), col)

    return draw


def _translate(kind: str, colour: Colour, direction: Tuple[float, float]) -> Callable[[Canvas, int, Rng], None]:
    def draw(canvas: Canvas, frames: int, rng: Rng) -> None:
        s = canvas.size
        r = rng.uniform(0.14, 0.18) * s
        speed = rng.uniform(0.4, 0.5) * s / (frames - 1)
        path = _linear_path(rng, frames, canvas.extent, r, (speed * direction[0], speed * direction[1]))
        col = _jitter(rng, colour)
        for t, (cx, cy) in enumerate(path):
            canvas.paint(t, canvas.shape(kind, cx, cy, r), col)

    return draw


def _rotate(canvas: Canvas, frames: int, rng: Rng) -> None:
    """A clock hand with a heavy tip turning clockwise (image y points down) by about half a turn
    through the lower half of the frame: it starts within 40 degrees of pointing right and ends
    near pointing left, so the turn shows as motion in one direction across the lower half. (A
    start anywhere on the circle makes the motion's direction depend on where the hand is, which
    ViViT Model 2 did not learn in 20 epochs at 32 x 32; README.)"""
    s = canvas.size
    cx, cy = canvas.extent / 2 + rng.uniform(-0.05, 0.05, size=2) * s
    cy -= 0.1 * s  # the pivot sits a little high so the hand's sweep fits the frame
    length = rng.uniform(0.3, 0.36) * s
    start = np.deg2rad(rng.uniform(-40, 40))
    step = np.deg2rad(rng.uniform(160, 200)) / (frames - 1)
    col = _jitter(rng, (235, 235, 235))
    for t in range(frames):
        angle = start + step * t
        canvas.paint(t, canvas.shape("hand", cx, cy, length, angle), col)
        canvas.paint(t, canvas.shape("disc", cx + length * np.cos(angle), cy + length * np.sin(angle), 0.1 * s), col)


def _grow(canvas: Canvas, frames: int, rng: Rng) -> None:
    s = canvas.size
    r0, r1 = rng.uniform(0.06, 0.1) * s, rng.uniform(0.3, 0.36) * s
    cx, cy = rng.uniform(r1, canvas.extent - r1)
    col = _jitter(rng, (230, 60, 230))
    for t, r in enumerate(np.linspace(r0, r1, frames)):
        canvas.paint(t, canvas.shape("disc", cx, cy, r), col)


def _a_then_b(canvas: Canvas, frames: int, rng: Rng) -> None:
    """An orange disc for the first part of the video, then a purple square (each at a random
    place), switching near the middle so every test clip shows both."""
    s = canvas.size
    switch = frames // 2 + int(rng.integers(-1, 2))
    for kind, colour, span in (("disc", (250, 150, 30), range(0, switch)),
                               ("square", (120, 40, 200), range(switch, frames))):
        r = rng.uniform(0.14, 0.2) * s
        cx, cy = rng.uniform(r, canvas.extent - r)
        col = _jitter(rng, colour)
        for t in span:
            canvas.paint(t, canvas.shape(kind, cx, cy, r), col)


@dataclass(frozen=True)
class SyntheticClass:
    name: str
    group: str  # "static" or "temporal"
    draw: Callable[[Canvas, int, Rng], None]
    reverse: bool = False  # frames of a `draw` video in reverse order
    mirror_sensitive: bool = False  # a horizontal flip changes the label

    @property
    def seed_key(self) -> int:
        return zlib.crc32(self.name.encode())


_horizontal = _translate("disc", (240, 220, 40), (1, 0))
_vertical = _translate("square", (40, 220, 220), (0, 1))
CLASSES: Dict[str, SyntheticClass] = {c.name: c for c in [
    SyntheticClass("red_disc", "static", _static("disc", (220, 40, 40))),
    SyntheticClass("green_square", "static", _static("square", (40, 200, 60))),
    SyntheticClass("blue_triangle", "static", _static("triangle", (50, 80, 230))),
    SyntheticClass("striped_square", "static", _static("stripes", (240, 240, 240))),
    SyntheticClass("move_right", "temporal", _horizontal, mirror_sensitive=True),
    SyntheticClass("move_left", "temporal", _horizontal, reverse=True, mirror_sensitive=True),
    SyntheticClass("move_down", "temporal", _vertical),
    SyntheticClass("move_up", "temporal", _vertical, reverse=True),
    SyntheticClass("rotate_cw", "temporal", _rotate, mirror_sensitive=True),
    SyntheticClass("rotate_ccw", "temporal", _rotate, reverse=True, mirror_sensitive=True),
    SyntheticClass("grow", "temporal", _grow),
    SyntheticClass("shrink", "temporal", _grow, reverse=True),
    SyntheticClass("a_then_b", "temporal", _a_then_b),
    SyntheticClass("b_then_a", "temporal", _a_then_b, reverse=True),
]}
DEFAULT_CLASSES = tuple(CLASSES)


def action_spans(frames: int, action_frames: Optional[int]) -> List[Tuple[int, int]]:
    """(first frame, length) of each action of a video: one action over the whole video, or
    repeats of about `action_frames` frames (near-equal lengths, at least 2 frames each)."""
    if action_frames is None or action_frames >= frames:
        return [(0, frames)]
    lengths = [len(part) for part in np.array_split(np.arange(frames), max(1, round(frames / max(2, action_frames))))]
    starts = np.cumsum([0] + lengths[:-1])
    return [(int(s), n) for s, n in zip(starts, lengths)]


def render_video(cls: SyntheticClass, index: int, frames: int, size: int, seed: int, width: Optional[int] = None,
                 action_frames: Optional[int] = None) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) of video `index` of class `cls`, `size` rows by `width`
    columns (default square); the same for the same arguments whichever other classes are
    generated.

    The class's action (one path, turn, growth or switch, with its own random draw) spans the
    whole video, or, with `action_frames`, repeats every ~`action_frames` frames, so that a
    short clip of a long video still shows the action at a natural speed (objects move a
    fraction of the frame per action, whatever the resolution). A reverse class reverses the
    whole video, which reverses every action.
    """
    rng = np.random.default_rng([seed, cls.seed_key, index])
    canvas = Canvas(frames, size, rng, width)
    for start, length in action_spans(frames, action_frames):
        canvas.offset = start
        cls.draw(canvas, length, rng)
    video = canvas.finish()
    return np.ascontiguousarray(video[::-1]) if cls.reverse else video


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux's MemAvailable; None elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_video_memory(frames: int, height: int, width: int, what: str) -> None:
    """Refuse, before anything is written, a video whose rendering needs more memory than this
    machine has: its uint8 frames plus the float64 pixel grids and frame `Canvas` keeps."""
    need = height * width * (3 * frames + 100)
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(f"{what}: one video of {frames} frames of {width}x{height} needs about {need / 2**30:.1f} "
                          f"GiB to render, and {have / 2**30:.1f} GiB is available: choose smaller frames or fewer")


def split_counts(videos_per_class: int, val_fraction: float, test_fraction: float) -> Dict[str, int]:
    n_val, n_test = round(videos_per_class * val_fraction), round(videos_per_class * test_fraction)
    n_train = videos_per_class - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{videos_per_class} videos per class leave none for training")
    return {"train": n_train, "val": n_val, "test": n_test}


def select_classes(names: Optional[List[str]]) -> List[SyntheticClass]:
    from ..errors import did_you_mean

    names = list(names or DEFAULT_CLASSES)
    unknown = [n for n in names if n not in CLASSES]
    if unknown:
        hint = did_you_mean(unknown[0], CLASSES) or "; vidbench make-dataset --list-classes shows them"
        raise ConfigError(f"unknown synthetic class(es) {', '.join(map(repr, unknown))}{hint}")
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate classes in {names}")
    return [CLASSES[n] for n in names]


@dataclass(frozen=True)
class SyntheticOptions:
    """`make_dataset`'s values (vidbench make-dataset's flags, a suite's [dataset] options),
    checked where they are defined: before any video is rendered."""

    classes: Optional[List[str]] = option(None, help="class names [all 14]")
    videos_per_class: int = option(60, positive=True, help="videos of each class")
    frames: int = option(17, positive=True, help="frames per video")
    size: int = option(32, positive=True, help="frame side in pixels, even (H.264 4:2:0)")
    seed: int = option(0, ge=0, help="random seed")
    fps: int = option(8, positive=True, help="frame rate of the files")
    val_fraction: float = option(0.15, ge=0, lt=1, help="share of each class's videos in the val split")
    test_fraction: float = option(0.15, ge=0, lt=1, help="share of each class's videos in the test split")
    num_frames: int = option(8, positive=True, help="frames of the dataset's default clip")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.size % 2:
            raise ConfigError(f"size must be even (H.264 stores 4:2:0 colour, in 2 x 2 blocks), got {self.size}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"val_fraction {self.val_fraction:g} + test_fraction {self.test_fraction:g} leave no "
                              "videos for training: keep their sum below 1")
        try:
            split_counts(self.videos_per_class, self.val_fraction, self.test_fraction)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if min(2, (self.frames - 1) // max(1, self.num_frames - 1)) < 1:
            raise ConfigError(f"{self.frames} frames per video cannot hold a clip of {self.num_frames} frames")
        select_classes(self.classes)
        check_video_memory(self.frames, self.size, self.size, "make-dataset")


def make_dataset(out: PathLike, classes: Optional[List[str]] = None, videos_per_class: int = 60, frames: int = 17,
                 size: int = 32, seed: int = 0, fps: int = 8, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, num_frames: int = 8, progress: bool = False) -> Path:
    """Write the dataset: ``videos/<class>/<class>_NNNN.mp4``, ``{train,val,test}.csv`` (path,label),
    ``classes.txt`` and ``dataset.json`` (groups, mirror-sensitive classes, default clip sampling).

    The default clip is `num_frames` frames at stride 2 (less where the videos are too short), a
    model input of 8 x 32 x 32 by default. The same arguments give byte-identical files.
    """
    SyntheticOptions(classes, videos_per_class, frames, size, seed, fps, val_fraction, test_fraction, num_frames)
    chosen = select_classes(classes)
    counts = split_counts(videos_per_class, val_fraction, test_fraction)
    stride = min(2, (frames - 1) // max(1, num_frames - 1))
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset.json").exists():
        raise FileExistsError(f"{out} is not empty and holds no generated dataset: choose another --out")
    # built in a folder beside `out` and moved into place whole: a full disk or a kill leaves no
    # half-made dataset, and a previous generation is replaced only once the new one is complete
    with building(out) as tmp:
        rows: Dict[str, List[Tuple[str, str]]] = {split: [] for split in counts}
        jobs = [(c, i) for c in chosen for i in range(videos_per_class)]
        for cls, index in tqdm(jobs, desc="videos", disable=not progress):
            rel = f"videos/{cls.name}/{cls.name}_{index:04d}.mp4"
            write_mp4(tmp / rel, render_video(cls, index, frames, size, seed), fps=fps)
            split = "train" if index < counts["train"] else "val" if index < counts["train"] + counts["val"] else "test"
            rows[split].append((rel, cls.name))
        for split, items in rows.items():
            with open(tmp / f"{split}.csv", "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(["path", "label"])
                writer.writerows(items)
        (tmp / "classes.txt").write_text("".join(f"{c.name}\n" for c in chosen))
        meta = {
            "name": "vidbench-synthetic", "format": 1, "classes": [c.name for c in chosen],
            "groups": {c.name: c.group for c in chosen}, "no_flip": [c.name for c in chosen if c.mirror_sensitive],
            "splits": {split: f"{split}.csv" for split in counts}, "label_map": "classes.txt",
            "clip": {"num_frames": num_frames, "stride": stride, "mode": "dense", "size": size},
            "generator": {"videos_per_class": videos_per_class, "frames": frames, "size": size, "seed": seed,
                          "fps": fps, "split_counts": counts, "codec": "h264 (libx264), all-intra, qp 12"},
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
