"""Parameter counts at paper sizes against ../shared/REFERENCE.md (built on the meta device:
no memory, no initialisation), and the registry's published-number contract."""
import pytest
import torch

from vidbench.models import create_model, list_models, model_entry

# (name, published params, tolerance): REFERENCE.md
PAPER_PARAMS = [
    ("vit_base", 86.57e6, 0.01),
    ("vivit_m1_base", 88.9e6, 0.01),
    ("vivit_m2_base", 115.1e6, 0.01),
    ("vivit_m3_base", 117.3e6, 0.01),
    ("vivit_m4_base", 88.9e6, 0.01),
    ("timesformer_base", 121.4e6, 0.01),
    ("mvit_b_16x4", 36.6e6, 0.01),
    ("mvit_b_32x3", 36.61e6, 0.01),
    ("mvitv2_s_16x4", 34.5e6, 0.01),
]


def count(name, **kw):
    with torch.device("meta"):
        model = create_model(name, **kw)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,published,tol", PAPER_PARAMS)
def test_params_match_paper(name, published, tol):
    assert count(name) == pytest.approx(published, rel=tol)


def test_timesformer_matches_code_release_exactly():
    # the official code with a 400-class head: 121,566,352 (REFERENCE.md: 121.57M)
    assert count("timesformer_base") == 121_566_352


def test_mvit_matches_torchvision_exactly():
    # torchvision mvit_v1_b / mvit_v2_s meta (REFERENCE.md); 32x3 adds 8 temporal positions of 96
    assert count("mvit_b_16x4") == 36_610_672
    assert count("mvitv2_s_16x4") == 34_537_744
    assert count("mvit_b_32x3") == 36_610_672 + 8 * 96


def test_vivit_m4_has_model_1_parameters():
    # Model 4 is Model 1 without the cls token and its position: same weights otherwise
    assert count("vivit_m1_base") - count("vivit_m4_base") == 2 * 768


@pytest.mark.parametrize("name", [n for n in list_models() if model_entry(n).meta.params])
def test_registry_meta_params_recomputed(name):
    meta = model_entry(name).meta
    assert count(name) == pytest.approx(meta.params, rel=meta.params_tol)


@pytest.mark.parametrize("name", list_models())
def test_registry_meta_input_size(name):
    meta = model_entry(name).meta
    with torch.device("meta"):
        model = create_model(name)
    assert tuple(model.input_size) == tuple(meta.input_size)
