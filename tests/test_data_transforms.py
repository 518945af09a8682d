import pytest
import torch

from vidbench.data import ClipTransform
from vidbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, three_crop


def _frames(t=4, h=32, w=48):
    x = torch.arange(w, dtype=torch.float32).expand(t, h, w) * 255 / (w - 1)  # brightness grows to the right
    return torch.stack([x, x, x], dim=-1).round().to(torch.uint8)  # (T, H, W, C)


def test_test_views_shapes_resize_and_normalisation():
    tf = ClipTransform(size=16)
    (view,) = tf.test(_frames(), num_crops=1)
    assert view.shape == (3, 4, 16, 16) and view.dtype == torch.float32  # short side 32 -> 16, centre crop
    grey = torch.full((2, 8, 8, 3), 128, dtype=torch.uint8)
    (norm,) = ClipTransform(size=8).test(grey)
    expected = [(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(norm.mean(dim=(1, 2, 3)), torch.tensor(expected), atol=1e-5)


def test_three_crop_spans_the_long_side():
    tf = ClipTransform(size=32)
    left, centre, right = tf.test(_frames(w=64), num_crops=3)
    brightness = [v[0].mean().item() for v in (left, centre, right)]
    assert brightness[0] < brightness[1] < brightness[2]
    # crops of (..., H, W) start at 0, the middle and the end of the longer side
    video = torch.arange(10 * 4, dtype=torch.float32).reshape(1, 10, 4)  # tall: crops go down
    tops = [c[0, :, 0].tolist()[0] for c in three_crop(video, 4)]
    assert tops == [0.0, 12.0, 24.0]
    with pytest.raises(ValueError, match="short side"):
        three_crop(video, 5)
    # a short side longer than the crop (resize 256, crop 224): centred across it
    lefts = [c[0, 0, 0].item() for c in three_crop(video, 2)]
    assert lefts == [1.0, 17.0, 33.0]  # column 1 of rows 0, 4, 8


def test_train_crop_and_flip():
    frames = _frames(t=3, h=32, w=32)
    tf = ClipTransform(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0))  # the whole frame, resized
    flips = {True: 0, False: 0}
    for seed in range(40):
        torch.manual_seed(seed)
        clip = tf.train(frames)
        assert clip.shape == (3, 3, 16, 16)
        flips[bool(clip[0, 0, 0, 0] > clip[0, 0, 0, -1])] += 1  # brighter on the left: flipped
    assert flips[True] > 5 and flips[False] > 5
    for seed in range(20):  # never flipped where the label forbids it, or with flips off
        torch.manual_seed(seed)
        assert tf.train(frames, allow_flip=False)[0, 0, 0, 0] < tf.train(frames, allow_flip=False)[0, 0, 0, -1]
        assert ClipTransform(size=16, flip=False).train(frames)[0, 0, 0, 0] < 0


def test_bad_input():
    with pytest.raises(ValueError, match="uint8 frames"):
        ClipTransform().train(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="1 or 3"):
        ClipTransform().test(_frames(), num_crops=2)
