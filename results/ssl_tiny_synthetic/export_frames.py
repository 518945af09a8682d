"""As run for these results (a scratch script, not part of the package): frames of the generated
video dataset as an image folder. It needs branch data's `vidbench.data` next to this branch's
`vidbench.ssl` (here a scratch copy of both in /tmp/combo).

    python export_frames.py data/synthetic frames 8
"""
import os
import sys
import time

sys.path.insert(0, "/tmp/combo")

from PIL import Image  # noqa: E402

from vidbench.data import DataSpec, build_dataset  # noqa: E402
from vidbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vidbench.ssl.data import ClipFrames  # noqa: E402

src, out, per_clip = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = DataSpec.load(src)
for split in ("train", "val", "test"):
    t0 = time.time()
    clips, issues = build_dataset(spec, split, train=False)  # centred clip, centre crop, normalised
    frames = ClipFrames(clips, frames_per_clip=per_clip, img_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for i in range(len(frames)):
        img, label = frames[i]
        folder = f"{out}/{split}/{label:02d}_{spec.classes[label]}"
        os.makedirs(folder, exist_ok=True)
        Image.fromarray((img * 255).round().byte().permute(1, 2, 0).numpy()).save(f"{folder}/{i:05d}.png")
    print(split, len(clips), "clips ->", len(frames), "frames, failed", len(frames.failed), "issues", len(issues),
          f"{time.time() - t0:.1f}s")
