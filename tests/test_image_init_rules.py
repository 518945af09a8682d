"""Honest interfaces: an option a model offers does something. `init=` (the tubelet rule of
`from_image_backbone`) exists exactly where `image_init_rules` says, i.e. on the tubelet models;
train refuses --init-mode elsewhere instead of ignoring it; TimeSformer's `tubelet_size` is only
the (1, p, p) it can honour."""
import inspect

import pytest
import torch

from vidbench.layers import TUBELET_INITS
from vidbench.models import create_model, list_models
from vidbench.train.config import TrainConfig
from vidbench.train.engine import TrainingStopped, build_model


@pytest.mark.parametrize("name", list_models("*_tiny"))
def test_init_argument_exactly_where_rules_are_declared(name):
    with torch.device("meta"):
        model = create_model(name)
    if not hasattr(model, "from_image_backbone"):
        assert model.image_init_rules == ()
        return
    takes_init = "init" in inspect.signature(model.from_image_backbone).parameters
    assert takes_init == bool(model.image_init_rules)
    assert set(model.image_init_rules) <= set(TUBELET_INITS)
    tubelet = getattr(model.config, "tubelet_size", None)
    assert bool(model.image_init_rules) == (tubelet is not None and tubelet[0] > 1)


@pytest.mark.parametrize("name", ["timesformer_tiny", "vtn_tiny", "vit_frameavg_tiny"])
def test_train_refuses_an_init_mode_it_cannot_apply(name, tmp_path):
    cfg = TrainConfig(model=name, data=str(tmp_path), out=str(tmp_path / "out"), init=str(tmp_path / "none.pt"),
                      init_mode="inflation")
    with pytest.raises(TrainingStopped, match=f"--init-mode inflation: {name} takes no tubelet rule"):
        build_model(cfg, num_classes=10, num_frames=8, size=32)  # refused before the checkpoint is read


def test_timesformer_tubelet_size_only_as_single_frame_patches():
    assert create_model("timesformer_tiny", tubelet_size=(1, 4, 4)).config.patch_size == 4
    with pytest.raises(ValueError, match=r"tubelet_size must be \(1, p, p\)"):
        create_model("timesformer_tiny", tubelet_size=(2, 8, 8))
