"""FLOP counting: fvcore handles on hand-computed cases, fused vs reference attention, the meta
device trace against a CPU trace, torch's FlopCounterMode as an independent count over the whole
registry, and the papers' numbers (tests/paper_tables.json)."""
from functools import cache

import pytest
import torch
from _paper_tables import PAPER
from torch import nn

from vidbench.bench import count_flops, flop_counter_by_operator, flop_counter_macs, sdpa_macs
from vidbench.bench.flops import FlopCountAnalysis  # fvcore's, imported without its jit.script warning
from vidbench.cli.flops_cmd import render
from vidbench.layers import Attention, fused_attn, scaled_dot_product
from vidbench.models import create_model, list_models, model_entry


def report(name: str, fused: bool = True):
    return _report(name, fused)  # one cache key per (name, fused), however the call spells it


@cache
def _report(name: str, fused: bool):
    return count_flops(name, fused=fused)  # built and traced on the meta device


def macs(name: str, fused: bool) -> int:
    return report(name, fused).macs


class OneAttention(nn.Module):
    """softmax(q k^T) v with q the input, keys/values fixed: Nq=7, Nk=9, d=4, dv=6, 2 heads."""

    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.randn(1, 2, 9, 4))
        self.v = nn.Parameter(torch.randn(1, 2, 9, 6))

    def forward(self, q):
        return scaled_dot_product(q, self.k, self.v)


def test_linear_counts_multiply_adds_by_hand():
    # (1, 5, 16) @ (16, 32): 5 * 16 * 32 multiply-adds; the bias adds are not counted
    assert count_flops(nn.Linear(16, 32), (5, 16)).macs == 5 * 16 * 32


@pytest.mark.parametrize("name", list_models())
def test_registry_has_no_uncounted_arithmetic(name):
    """Every registry model at its own (paper) config, traced on the meta device: each op is either
    counted or known to do no arithmetic the papers count (elementwise, reduction, data movement).
    An op in neither group (MViTv2's relative-position `unflatten` was one) would be reported as
    UNCOUNTED, and the README says that line is empty for every registry model."""
    counted = report(name)  # cached: the registry-wide tests below reuse the trace
    assert counted.device == "meta" and counted.macs > 0
    assert counted.uncounted_ops == {}


@pytest.mark.parametrize("fused", [True, False])
def test_one_attention_call_by_hand(fused):
    # q k^T: 2 heads x 7 x 9 x 4; attn @ v: 2 heads x 7 x 9 x 6
    expected = 2 * 7 * 9 * 4 + 2 * 7 * 9 * 6
    assert sdpa_macs((1, 2, 7, 4), (1, 2, 9, 4), (1, 2, 9, 6)) == expected
    report = count_flops(OneAttention(), (2, 7, 4), fused=fused)
    assert report.macs == expected
    assert report.uncounted_ops == {}
    with fused_attn(fused):  # torch's counter, with the CPU flash kernel registered, agrees
        assert flop_counter_macs(OneAttention(), (2, 7, 4)) == expected


@pytest.mark.parametrize("fused", [True, False])
def test_attention_module_by_hand(fused):
    dim, heads, n = 8, 2, 5
    qkv, proj = n * dim * 3 * dim, n * dim * dim
    attn = heads * n * n * (dim // heads) * 2
    assert count_flops(Attention(dim, heads), (n, dim), fused=fused).macs == qkv + proj + attn


def test_plain_fvcore_drops_fused_attention_and_we_do_not():
    """The trap the handles exist for: fvcore alone counts F.scaled_dot_product_attention as 0."""
    model = create_model("vivit_m1_tiny").eval()
    x = torch.zeros(1, *model.input_size)
    with fused_attn(True):
        plain = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        plain_total = plain.total()
        assert "aten::scaled_dot_product_attention" in plain.unsupported_ops()
        ours = count_flops(model, fused=True)
    assert ours.macs > plain_total
    assert ours.by_operator["scaled_dot_product_attention"] == ours.macs - plain_total


def test_unsupported_arithmetic_is_reported_not_lost():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cdist(x, x).softmax(-1)  # cdist: real arithmetic without an fvcore handle

    report = count_flops(Odd(), (6, 3))
    assert report.uncounted_ops == {"aten::cdist": 1}
    assert "aten::softmax" in report.elementwise_ops and "aten::softmax" not in report.uncounted_ops
    text = render(report)
    assert "UNCOUNTED ops (no FLOP handle; may hide real arithmetic): aten::cdist x1" in text
    assert "1 MAC = 1 FLOP" in text


PUBLISHED = sorted(n for n, paper in PAPER.items() if paper["gmacs"])


# every tiny config (each family, every attention axis) and one paper size where attention is 40%
# of the work; the other paper sizes run the same code as their tiny siblings (a trace: ~2-5 s)
@pytest.mark.parametrize("name", list_models("*_tiny") + ["vivit_m1_base"])
def test_fused_and_reference_attention_count_the_same(name):
    assert macs(name, True) == macs(name, False)


# the two counters at every tiny config and, per family, at the smallest paper size of each architecture
# variant (MViT v1 and v2, DINOv2 with registers, each ViViT model, V-JEPA 2's probe): the larger sizes
# run the same code with wider and deeper layers (their fvcore traces are all in the test above)
INDEPENDENT = list_models("*_tiny") + [
    "hiera_base_16x224", "mvit_b_16x4", "mvitv2_s_16x4", "swin3d_t", "timesformer_base", "videomae_small",
    "videoprism_base", "vit_small_dinov2_reg4", "vit_frameavg_base", "vivit_m1_base", "vivit_m2_base",
    "vivit_m3_base", "vivit_m4_base", "vjepa2_vitl_probe", "vtn_base"]


def test_the_independent_count_covers_every_family_at_a_paper_size():
    paper = [n for n in INDEPENDENT if not n.endswith("_tiny")]
    assert {model_entry(n).family for n in paper} == {model_entry(n).family for n in list_models()}


@pytest.mark.parametrize("name", INDEPENDENT)
def test_independent_count_agrees_within_one_percent(name):
    """torch's FlopCounterMode (dispatch level, SDPA decomposed into bmm on meta) vs fvcore, with
    fvcore's LayerNorm rule added to it; without it the two differ only by the norms."""
    independent = flop_counter_by_operator(name)
    assert macs(name, True) == pytest.approx(sum(independent.values()), rel=0.01)
    fvcore_norms = report(name).by_operator.get("layer_norm", 0)
    plain = sum(n for op, n in independent.items() if op != "aten.native_layer_norm")
    assert macs(name, True) - fvcore_norms == pytest.approx(plain, rel=0.01)


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_gmacs(name):
    """fvcore's count against the paper's figure (tests/paper_tables.json, which the registry's
    ModelMeta must quote: tests/test_paper_sizes.py)."""
    paper = PAPER[name]
    assert macs(name, True) / 1e9 == pytest.approx(paper["gmacs"], rel=paper["gmacs_rel_tol"])


# the CPU configs (vit_tiny is DeiT-Ti at 224: its image path is vit_frameavg_tiny's)
@pytest.mark.parametrize("name", [n for n in list_models("*_tiny") if n != "vit_tiny"])
def test_meta_trace_counts_what_a_cpu_trace_counts(name):
    cpu = count_flops(create_model(name))  # a real forward on CPU
    meta = count_flops(name)  # a trace on the meta device
    assert cpu.device == "cpu" and meta.device == "meta"
    assert meta.macs == cpu.macs
    assert meta.by_operator == cpu.by_operator
    assert meta.uncounted_ops == cpu.uncounted_ops


def test_meta_tracing_restores_the_dispatcher():
    def meta_kernels():
        return [line for line in torch._C._dispatch_dump("aten::convolution").splitlines() if line.startswith("Meta")]

    before = meta_kernels()
    count_flops("vivit_m1_tiny")
    assert meta_kernels() == before
    with torch.device("meta"):  # and meta convolutions still work outside a trace
        out = nn.Conv3d(3, 4, 2)(torch.empty(1, 3, 4, 4, 4))
    assert out.shape == (1, 4, 3, 3, 3)


def test_overrides_change_the_count():
    eight, sixteen = count_flops("vivit_m2_tiny").macs, count_flops("vivit_m2_tiny", num_frames=16).macs
    assert sixteen > 1.9 * eight
    with pytest.raises(TypeError, match="num_frames"):
        count_flops("vit_tiny", num_frames=8)


def test_meta_trace_failure_names_the_cpu_fallback():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x) * x.sum().item()  # needs data: impossible on meta tensors

    with pytest.raises(RuntimeError, match="device='cpu'"):
        count_flops(DataDependent().to("meta"), (4,))
    assert count_flops(DataDependent(), (4,)).macs == 16
