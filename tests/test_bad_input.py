import pytest
import torch

from vidbench.models import create_model


def test_video_model_rejects_wrong_rank():
    model = create_model("vivit_m1_tiny")
    with pytest.raises(ValueError, match=r"expected a video batch of shape \(B, C, T, H, W\), got a 4-d tensor"):
        model(torch.randn(2, 3, 32, 32))


def test_image_model_rejects_video():
    with pytest.raises(ValueError, match=r"expected an image batch of shape \(B, C, H, W\)"):
        create_model("vit_tiny", img_size=32, patch_size=8)(torch.randn(1, 3, 8, 32, 32))


@pytest.mark.parametrize("name", ["vivit_m2_tiny", "timesformer_tiny", "vtn_tiny", "vit_frameavg_tiny"])
def test_wrong_channel_count(name):
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        create_model(name)(torch.randn(1, 1, 8, 32, 32))


def test_frames_not_divisible_by_tubelet_names_both_numbers():
    with pytest.raises(ValueError, match="frame count 9 is not divisible by the patch/tubelet size 2"):
        create_model("vivit_m1_tiny", num_frames=9)
    with pytest.raises(ValueError, match="image height 36 is not divisible by the patch/tubelet size 8"):
        create_model("timesformer_tiny", img_size=36)


def test_clip_of_another_size_says_how_to_build_for_it():
    with pytest.raises(ValueError, match="built for 8 frames of 32x32, got 16 frames of 32x32.*num_frames=16"):
        create_model("vivit_m3_tiny")(torch.randn(1, 3, 16, 32, 32))


def test_unknown_model():
    with pytest.raises(KeyError, match="unknown model"):
        create_model("resnet50")


def test_bad_config_values():
    with pytest.raises(ValueError, match="attention_type must be one of"):
        create_model("timesformer_tiny", attention_type="diagonal")
    with pytest.raises(ValueError, match="has no cls token"):
        create_model("vivit_m3_tiny", classifier="token")
    with pytest.raises(ValueError, match="time_embed_std must be >= 0, got -0.5"):
        create_model("timesformer_tiny", time_embed_std=-0.5)
    with pytest.raises(ValueError, match="temporal_pos_std must be >= 0, got -1"):
        create_model("vivit_m2_tiny", temporal_pos_std=-1)
    with pytest.raises(ValueError, match="exceeds"):
        create_model("vtn_tiny", num_frames=100)
