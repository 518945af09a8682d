"""Parameter counts at paper sizes (built on the meta device: no memory, no initialisation)
against the papers' numbers in tests/paper_tables.json, and the registry's published-number
contract against the same file."""
import pytest
import torch
from _paper_tables import PAPER

from vidbench.models import create_model, list_models, model_entry


def count(name, **kw):
    with torch.device("meta"):
        model = create_model(name, **kw)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_match_paper(name):
    """Within the paper's rounding; equal to a reference implementation's exact count where one
    is published (torchvision meta, the TimeSformer code release, timm)."""
    paper = PAPER[name]
    counted = count(name)
    assert counted == pytest.approx(paper["params"], rel=paper["params_rel_tol"])
    if "code_params" in paper:
        assert counted == paper["code_params"]


def test_mvit_32x3_adds_only_temporal_positions():
    # MViT-B's 16 blocks on 32 frames: 8 more temporal position embeddings of width 96
    assert count("mvit_b_32x3") == PAPER["mvit_b_16x4"]["code_params"] + 8 * 96


def test_vivit_m4_has_model_1_parameters():
    # Model 4 is Model 1 without the cls token and its position: same weights otherwise
    assert count("vivit_m1_base") - count("vivit_m4_base") == 2 * 768


def test_every_published_registry_entry_has_a_paper_entry():
    quoted = {n for n in list_models() if model_entry(n).meta.params or model_entry(n).meta.gmacs}
    assert quoted == set(PAPER)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_registry_quotes_the_papers(name):
    """ModelMeta (what reports print as "paper") holds the published figures, not our counts."""
    meta, paper = model_entry(name).meta, PAPER[name]
    assert (meta.params, meta.gmacs) == (paper["params"], paper["gmacs"])


@pytest.mark.parametrize("name", list_models())
def test_registry_meta_input_size(name):
    meta = model_entry(name).meta
    with torch.device("meta"):
        model = create_model(name)
    assert tuple(model.input_size) == tuple(meta.input_size)
