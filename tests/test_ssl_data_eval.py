"""Frame sources (image folder, frames of clips), augmentation recipes, kNN and linear probe."""
import pytest
import torch
from _ssl_data import TensorImages, quadrant_images, write_image_folder
from torch.utils.data import Dataset

from vidbench.ssl.augment import MultiViewTransform, ViewAugment, method_views, parse_aug_overrides
from vidbench.ssl.data import (
    ClipFrames,
    MultiViewDataset,
    collate_views,
    image_folder_splits,
    is_image_folder,
)
from vidbench.ssl.evaluate import knn_predict, knn_top1, linear_probe
from vidbench.ssl.methods import METHODS


def test_image_folder_is_split_per_class(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n=40)
    assert is_image_folder(root) and not is_image_folder(tmp_path)
    splits = image_folder_splits(root, img_size=16)
    assert len(splits["train"]) == 32 and len(splits["val"]) == 8
    assert sorted(splits["val"].targets) == [0, 0, 1, 1, 2, 2, 3, 3]
    image, label = splits["val"][0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1


def test_image_folder_with_train_and_val_dirs_and_resizing(tmp_path):
    write_image_folder(tmp_path / "train", n=16, size=20)
    write_image_folder(tmp_path / "val", n=8, size=20, seed=1)
    splits = image_folder_splits(tmp_path, img_size=16)
    assert set(splits) == {"train", "val"} and len(splits["val"]) == 8
    assert splits["train"][3][0].shape == (3, 16, 16)


def test_a_bad_image_is_set_aside_not_fatal(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n=8)
    bad = root / "class1" / "0001.png"
    bad.write_bytes(b"not a png")
    splits = image_folder_splits(root, img_size=16, holdout=0.5)
    ds = MultiViewDataset(splits["train"], MultiViewTransform(method_views("simclr", 16, 2), 16))
    (views, index), failed = collate_views([ds[i] for i in range(len(ds))])
    assert len(failed) == 1 and failed[0].path.endswith("0001.png") and "UnidentifiedImageError" in failed[0].reason
    assert views[0].shape == (len(ds) - 1, 3, 16, 16) and len(views) == 2


class BadVideo:
    """What a video dataset may return for an item it could not load (no exception)."""

    def __init__(self, path, reason):
        self.path, self.reason = path, reason


class Clips(Dataset):
    """Normalised clips (C, T, H, W) with labels, like a video dataset's training items."""

    def __init__(self, mean, std, n=3, bad=None, marker=None, views=0):
        g = torch.Generator().manual_seed(0)
        self.raw = torch.rand(n, *([views] if views else []), 3, 8, 20, 20, generator=g)
        self.mean, self.std, self.bad = torch.tensor(mean).view(3, 1, 1, 1), torch.tensor(std).view(3, 1, 1, 1), bad
        self.marker = marker

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, i):
        if i == self.bad:
            raise OSError("truncated video")
        if i == self.marker:
            return BadVideo("v1.mp4", "moov atom not found")
        return (self.raw[i] - self.mean) / self.std, i % 2, i


def test_frames_of_clips_are_evenly_spaced_and_unnormalised():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    clips = Clips(mean, std)
    frames = ClipFrames(clips, frames_per_clip=3, img_size=20, mean=mean, std=std)
    assert len(frames) == 9 and frames.targets == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    for k, t in enumerate([0, 4, 7]):  # linspace(0, 7, 3) rounded
        torch.testing.assert_close(frames[3 + k][0], clips.raw[1][:, t], atol=1 / 255, rtol=0)


def test_frames_of_clips_check_the_value_range_and_skip_bad_clips():
    with pytest.raises(ValueError, match="not \\[0, 1\\]: pass the mean/std"):
        ClipFrames(Clips((0.4, 0.5, 0.6), (0.2, 0.25, 0.3)), 2, 20)
    frames = ClipFrames(Clips((0, 0, 0), (1, 1, 1), bad=1), 2, 16)
    assert len(frames) == 4 and frames.failed[0].index == 1 and "truncated video" in frames.failed[0].reason
    assert frames[0][0].shape == (3, 16, 16)
    frames = ClipFrames(Clips((0, 0, 0), (1, 1, 1), marker=2), 2, 16)
    assert len(frames) == 4 and frames.failed[0].path == "v1.mp4" and frames.failed[0].reason == "moov atom not found"


def test_frames_of_every_view_of_a_multi_view_item():
    clips = Clips((0, 0, 0), (1, 1, 1), n=2, views=3)
    frames = ClipFrames(clips, frames_per_clip=2, img_size=20)
    assert len(frames) == 2 * 3 * 2 and frames.targets[:6] == [0] * 6
    torch.testing.assert_close(frames[3][0], clips.raw[0, 1, :, 7], atol=1 / 255, rtol=0)  # view 1, last frame


def test_every_method_has_a_recipe_and_byol_views_are_asymmetric():
    for m in METHODS:
        assert len(method_views(m, 32, 2)) == 2
    small, large = method_views("byol", 32, 2), method_views("byol", 224, 2)
    assert (small[0].solarize_p, small[1].solarize_p) == (0.0, 0.2)
    assert (large[0].blur_p, large[1].blur_p, large[1].solarize_p) == (1.0, 0.1, 0.2)
    assert len(method_views("wmse", 32, 4)) == 4 and len(method_views("instdisc", 32, 1)) == 1


def test_views_are_random_normalised_and_configurable():
    t = MultiViewTransform([ViewAugment(), ViewAugment(jitter_p=0, gray_p=1.0, crop_scale=(1.0, 1.0), flip_p=0)], 16)
    image = quadrant_images(1)[0][0]
    a, b = t(image)
    assert a.shape == b.shape == (3, 16, 16)
    assert torch.allclose(b[0] * 0.229 + 0.485, b[1] * 0.224 + 0.456, atol=1e-5)  # grayscale, then normalised
    assert not torch.equal(t(image)[0], t(image)[0])
    assert parse_aug_overrides(["blur_p=0.5", "crop-scale=0.2,1"]) == {"blur_p": 0.5, "crop_scale": (0.2, 1.0)}
    with pytest.raises(ValueError, match="KEY one of crop_scale"):
        parse_aug_overrides(["blurr=1"])
    with pytest.raises(ValueError, match="probability"):
        ViewAugment(blur_p=2)


def test_weighted_knn_votes_by_exp_similarity_over_temperature():
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[0.96, 0.28]])
    sims = (torch.nn.functional.normalize(train, dim=1) @ query[0]).tolist()  # 0.96, 0.936, 0.8, 0.28
    for k, t in ((1, 0.07), (3, 0.07), (3, 10.0), (4, 1.0)):
        top = sorted(range(4), key=lambda i: -sims[i])[:k]
        votes = [sum(torch.tensor(sims[i] / t).exp().item() for i in top if labels[i] == c) for c in (0, 1)]
        assert knn_predict(train, labels, query, k=k, temperature=t).item() == max((0, 1), key=lambda c: votes[c])
    assert knn_predict(train, labels, query, k=3, temperature=10.0).item() == 1  # two class-1 votes win
    assert knn_predict(train, labels, query, k=1).item() == 0


def test_knn_and_linear_probe_on_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 3
    y = torch.arange(90) % 3
    x = centres[y] + 0.3 * torch.randn(90, 8, generator=g)
    assert knn_top1(x[:60], y[:60], x[60:], y[60:], k=200) == 1.0
    assert linear_probe(x[:60], y[:60], x[60:], y[60:]) == 1.0
    noise = torch.randn(90, 8, generator=g)
    assert linear_probe(noise[:60], y[:60], noise[60:], y[60:]) < 0.7  # nothing to find in noise


def test_a_backbone_with_nan_weights_is_refused_not_scored():
    """NaN features would give kNN and the probe a plausible top-1 (chance, class 0 for all)."""
    from vidbench.errors import UserError
    from vidbench.models import create_model
    from vidbench.ssl.evaluate import evaluate_backbone

    vit = create_model("vit_tiny", num_classes=0, img_size=16, patch_size=8, depth=1, embed_dim=16, num_heads=2)
    with torch.no_grad():
        vit.blocks[0].mlp.fc2.weight[0, 0] = float("nan")
    x, y = quadrant_images(16)
    with pytest.raises(UserError, match="NaN or infinite for 16 of 16 items"):
        evaluate_backbone(vit, TensorImages(x, y), TensorImages(x, y), k=5, batch_size=8)


def test_source_over_tensors_works_with_the_multi_view_dataset():
    x, y = quadrant_images(8)
    ds = MultiViewDataset(TensorImages(x, y), MultiViewTransform(method_views("wmse", 16, 4), 16))
    views, index = ds[5]
    assert len(views) == 4 and index == 5


def test_open_frames_takes_a_generated_video_dataset(tmp_path):
    """Pretraining data straight from `make-dataset` output: evenly spaced frames of each decoded
    video's centred clip, train split for pretraining, val split for top-1."""
    from vidbench.data import make_dataset
    from vidbench.ssl.run import open_frames

    data = make_dataset(tmp_path / "syn", ["red_disc", "move_left"], videos_per_class=5, val_fraction=0.2,
                        test_fraction=0.2)
    frames = open_frames(data, img_size=16, frames_per_clip=4)
    assert frames.kind == "video" and frames.eval_split == "val" and frames.classes == ["red_disc", "move_left"]
    assert len(frames.train) == 2 * 3 * 4 and len(frames.eval) == 2 * 1 * 4
    image, label = frames.train[0]
    assert image.shape == (3, 16, 16) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and label == 0
    with pytest.raises(ValueError, match="neither a class-per-folder image tree"):
        open_frames(tmp_path, img_size=16)
