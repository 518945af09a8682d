import pytest
import torch

from vidbench.data import ClipSampler, ClipTooShortError


def test_dense_train_indices_stride_and_random_start():
    sampler = ClipSampler(num_frames=4, stride=2)
    assert sampler.span == 7
    starts = set()
    for seed in range(50):
        torch.manual_seed(seed)
        idx = sampler.train_indices(10)
        assert [b - a for a, b in zip(idx, idx[1:])] == [2, 2, 2]
        starts.add(idx[0])
    assert starts == {0, 1, 2, 3}  # every start from 0 to 10 - 7
    assert ClipSampler(8, 2).train_indices(15) == [0, 2, 4, 6, 8, 10, 12, 14]  # exactly fits


def test_dense_test_clips_are_evenly_spaced_and_symmetric():
    sampler = ClipSampler(num_frames=4, stride=2)  # span 7
    assert sampler.test_indices(7, 1) == [[0, 2, 4, 6]]
    assert sampler.test_indices(17, 1) == [[5, 7, 9, 11]]  # centre: starts 0..10, middle 5
    assert [c[0] for c in sampler.test_indices(17, 4)] == [1, 4, 6, 9]  # floor((k + 0.5) * 11 / 4)
    # the default generated dataset: 17 frames, 8 at stride 2 -> starts 0, 1, 2
    eight = ClipSampler(8, 2)
    assert [c[0] for c in eight.test_indices(17, 1)] == [1]
    assert [c[0] for c in eight.test_indices(17, 4)] == [0, 1, 1, 2]  # reversal maps start s to 2 - s


def test_uniform_segments():
    sampler = ClipSampler(num_frames=4, mode="uniform")
    assert sampler.span == 4
    assert sampler.test_indices(20, 1) == [[2, 7, 12, 17]]  # centre of each 5-frame segment
    assert sampler.test_indices(20, 2) == [[1, 6, 11, 16], [3, 8, 13, 18]]
    for seed in range(30):
        torch.manual_seed(seed)
        idx = sampler.train_indices(20)
        assert all(5 * i <= f < 5 * (i + 1) for i, f in enumerate(idx))  # one frame per segment
    assert ClipSampler(4, mode="uniform").test_indices(4, 1) == [[0, 1, 2, 3]]


def test_too_short_and_bad_arguments():
    with pytest.raises(ClipTooShortError, match="3 frames, shorter than the clip .*needs 15"):
        ClipSampler(8, 2).train_indices(3)
    with pytest.raises(ClipTooShortError):
        ClipSampler(8, mode="uniform").test_indices(7, 2)
    with pytest.raises(ValueError, match="sampling mode"):
        ClipSampler(8, mode="random")
    with pytest.raises(ValueError, match="num_clips"):
        ClipSampler(8, 1).test_indices(10, 0)
