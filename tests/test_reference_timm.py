"""vidbench's ViT equals timm's: same weights through the converter, same logits."""
import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is in the test extra: pip install -e .[test]")

from vidbench.models import create_model  # noqa: E402
from vidbench.weights.formats.timm_vit import timm_vit_to_vidbench  # noqa: E402


def test_vit_base_equals_timm_vit_base_patch16_224():
    torch.manual_seed(0)
    ref = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    ours = create_model("vit_base", num_classes=1000).eval()
    ours.load_state_dict(timm_vit_to_vidbench(ref.state_dict()), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=0)
    assert sum(p.numel() for p in ours.parameters()) == 86_567_656


@pytest.mark.parametrize("ours,theirs", [("vit_tiny", "vit_tiny_patch16_224"), ("vit_small", "vit_small_patch16_224")])
def test_vit_sizes_equal_timm(ours, theirs):
    with torch.device("meta"):
        a = create_model(ours, num_classes=1000)
        b = timm.create_model(theirs, pretrained=False)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())


def test_converter_rejects_unsupported_timm_features():
    with pytest.raises(ValueError, match="dist_token"):  # register tokens load now (tests/test_ssl_backbones.py)
        timm_vit_to_vidbench({"dist_token": torch.zeros(1)})
