import pytest
import torch

import vidbench
from vidbench.models import ModelMeta, list_models, register_model
from vidbench.weights import create_model  # the registry's, plus weights=

REQUIRED = [
    "vit_tiny", "vit_small", "vit_base", "vit_frameavg_tiny", "vit_frameavg_base",
    "vivit_m1_base", "vivit_m2_base", "vivit_m3_base", "vivit_m4_base", "vivit_m2_large",
    "vivit_m1_tiny", "vivit_m2_tiny", "vivit_m3_tiny", "vivit_m4_tiny",
    "timesformer_base", "timesformer_hr", "timesformer_large", "timesformer_tiny",
    "vtn_base", "vtn_tiny",
    "mvit_b_16x4", "mvit_b_32x3", "mvit_s_16x4", "mvitv2_s_16x4", "mvit_tiny",
]


def test_required_names_are_registered():
    assert set(REQUIRED) <= set(list_models())
    assert vidbench.create_model is create_model


def test_list_models_pattern_and_family():
    assert list_models("vivit_m*_tiny") == ["vivit_m1_tiny", "vivit_m2_tiny", "vivit_m3_tiny", "vivit_m4_tiny"]
    assert set(list_models(family="timesformer")) >= {"timesformer_base", "timesformer_tiny"}


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError, match="unknown model 'vivit_m2_tinny'.*did you mean vivit_m2_tiny"):
        create_model("vivit_m2_tinny")


def test_duplicate_registration_is_an_error():
    def vit_tiny(**kw):
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="'vit_tiny' is registered twice"):
        register_model("vit", ModelMeta())(vit_tiny)


def test_overrides_apply_and_none_is_dropped():
    m = create_model("vivit_m1_tiny", num_classes=7, num_frames=4, img_size=16, depth=2, drop_rate=None)
    assert m.config.num_classes == 7 and m.config.num_frames == 4 and len(m.blocks) == 2
    assert m(torch.randn(1, 3, 4, 16, 16)).shape == (1, 7)
    m = create_model("vivit_m1_tiny", patch_size=4)
    assert m.config.tubelet_size == (2, 4, 4)
    m = create_model("timesformer_tiny", tubelet_size=(1, 4, 4))
    assert m.config.patch_size == 4


def test_unknown_override_is_an_error():
    with pytest.raises(TypeError, match="vit_tiny: unknown option.*wings"):
        create_model("vit_tiny", wings=2)


def test_reset_classifier():
    m = create_model("timesformer_tiny")
    m.reset_classifier(3)
    assert m(torch.randn(2, *m.input_size)).shape == (2, 3)
    m.reset_classifier(0)
    assert m(torch.randn(2, *m.input_size)).shape == (2, m.num_features)
