"""Each self-supervised loss on small hand-made tensors against a direct (loop) computation of
its formula, and the properties the papers rely on (whitening, orthonormal base, bank rule)."""
import math

import pytest
import torch
import torch.nn.functional as F

from vidbench.ssl import SingularCovariance
from vidbench.ssl.arb import arb_base, arb_loss, standardize
from vidbench.ssl.byol import byol_loss, cosine_tau
from vidbench.ssl.contrastive import contrastive_loss, pairwise_contrastive_loss
from vidbench.ssl.distill import distillation_loss
from vidbench.ssl.instdisc import MemoryBank, nce_loss
from vidbench.ssl.simclr import nt_xent
from vidbench.ssl.wmse import suggest_eps, whiten, wmse_loss


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


# --- BYOL --------------------------------------------------------------------------------------

def test_byol_loss_is_two_minus_two_cos_with_stop_gradient():
    p = torch.tensor([[1.0, 0.0], [3.0, 4.0]], requires_grad=True)
    z = torch.tensor([[0.0, 2.0], [3.0, 4.0]], requires_grad=True)
    expected = ((2 - 2 * 0.0) + (2 - 2 * 1.0)) / 2  # orthogonal pair, identical directions
    loss = byol_loss(p, z)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert z.grad is None and p.grad is not None  # the target side gets no gradient
    p2, z2 = torch.randn(5, 7), torch.randn(5, 7)
    direct = sum(((p2[i] / p2[i].norm() - z2[i] / z2[i].norm()) ** 2).sum() for i in range(5)) / 5
    assert byol_loss(p2, z2).item() == pytest.approx(direct.item(), rel=1e-5)


def test_byol_tau_schedule_values():
    assert cosine_tau(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_tau(50, 100, 0.996) == pytest.approx(0.998)
    assert cosine_tau(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_tau(25, 100, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    taus = [cosine_tau(k, 10, 0.9) for k in range(11)]
    assert all(a < b for a, b in zip(taus, taus[1:]))


# --- SimCLR ------------------------------------------------------------------------------------

def test_nt_xent_matches_the_formula_view_by_view():
    z1, z2, t = torch.randn(4, 3), torch.randn(4, 3), 0.5
    views = torch.cat([z1, z2]).tolist()
    n2, total = 8, 0.0
    for i in range(n2):
        j = (i + 4) % n2
        num = math.exp(_cos(views[i], views[j]) / t)
        den = sum(math.exp(_cos(views[i], views[k]) / t) for k in range(n2) if k != i)
        total += -math.log(num / den)
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / n2, rel=1e-5)


def test_nt_xent_prefers_aligned_views():
    z = F.normalize(torch.randn(6, 16), dim=1)
    assert nt_xent(z, z + 0.01 * torch.randn(6, 16), 0.1) < nt_xent(z, torch.randn(6, 16), 0.1)


def test_distillation_loss_is_t_squared_cross_entropy():
    s, t, temp = torch.randn(3, 5), torch.randn(3, 5), 2.0
    total = 0.0
    for i in range(3):
        pt = [math.exp(v / temp) for v in t[i].tolist()]
        ps = [math.exp(v / temp) for v in s[i].tolist()]
        total += -sum(a / sum(pt) * math.log(b / sum(ps)) for a, b in zip(pt, ps))
    assert distillation_loss(s, t, temp).item() == pytest.approx(temp ** 2 * total / 3, rel=1e-5)


# --- W-MSE -------------------------------------------------------------------------------------

def _cov(x):
    xc = x - x.mean(0)
    return xc.T @ xc / (x.shape[0] - 1)


def test_whitened_sub_batch_covariance_is_identity():
    x = torch.randn(64, 8) @ torch.randn(8, 8) + 3.0  # correlated, offset
    w = whiten(x)
    torch.testing.assert_close(_cov(w), torch.eye(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(w.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    # W = L^-1 with L L^T = cov: check against the Cholesky factor computed directly in fp64
    chol = torch.linalg.cholesky(_cov(x.double()))
    expected = torch.linalg.solve(chol, (x.double() - x.double().mean(0)).T).T
    torch.testing.assert_close(w.double(), expected, atol=1e-4, rtol=1e-4)


def test_whitening_runs_in_fp32_under_autocast():
    x = torch.randn(64, 8) @ torch.randn(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = whiten(x.bfloat16())
    assert w.dtype == torch.float32
    torch.testing.assert_close(_cov(w), torch.eye(8), atol=1e-4, rtol=0)


def test_gradients_flow_through_the_whitening():
    x = torch.randn(12, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(whiten, (x,))


def test_wmse_loss_matches_direct_computation_for_two_and_four_views():
    torch.manual_seed(1)
    for num_views in (2, 4):
        views = [torch.randn(16, 3) for _ in range(num_views)]
        gen = torch.Generator().manual_seed(3)
        loss = wmse_loss(views, w_size=8, w_iter=2, generator=gen)
        gen = torch.Generator().manual_seed(3)
        total, pairs = 0.0, 0
        for _ in range(2):
            perm = torch.randperm(16, generator=gen).view(-1, 8)
            for idx in perm:  # per sub-batch: whiten every view, 2 - 2 cos per image and view pair
                w = [whiten(v[idx]) for v in views]
                for i in range(num_views):
                    for j in range(i + 1, num_views):
                        total += sum(2 - 2 * _cos(w[i][n].tolist(), w[j][n].tolist()) for n in range(8)) / 16
        pairs = num_views * (num_views - 1) // 2
        assert loss.item() == pytest.approx(total / (2 * pairs), rel=1e-4)


def test_singular_covariance_stops_with_the_eps_to_use():
    x = torch.randn(16, 4)
    x = torch.cat([x, x[:, :1]], dim=1)  # a repeated feature: rank 4 of 5
    with pytest.raises(SingularCovariance, match=r"singular with w_eps=0; use --w-eps (1e-\d+)") as err:
        whiten(x)
    eps = float(str(err.value).split("--w-eps ")[1].split(" ")[0])
    w = whiten(x, eps)  # the suggested eps works
    assert torch.isfinite(w).all()
    assert eps == suggest_eps(_cov(x))


def test_sub_batch_smaller_than_the_embedding_says_so():
    with pytest.raises(SingularCovariance, match=r"rank at most 5 < 8: use --w-size > 8"):
        whiten(torch.randn(6, 8))


# --- ARB ---------------------------------------------------------------------------------------

def test_arb_base_is_orthonormal_and_the_nearest_such_matrix():
    z = standardize(torch.randn(50, 6, dtype=torch.double) @ torch.randn(6, 6, dtype=torch.double))
    b = arb_base(z, eps=0.0).double()
    n = z.shape[0]
    q = b / math.sqrt(n - 1)
    torch.testing.assert_close(q.T @ q, torch.eye(6, dtype=torch.double), atol=1e-4, rtol=0)
    u, _, vh = torch.linalg.svd(z / math.sqrt(n - 1), full_matrices=False)
    torch.testing.assert_close(q, u @ vh, atol=1e-4, rtol=0)  # polar factor: nearest orthonormal columns


def test_arb_base_per_group_and_detached():
    z = standardize(torch.randn(40, 8)).requires_grad_()
    b = arb_base(z, eps=0.0, groups=2)
    assert not b.requires_grad
    for g in range(2):
        q = b[:, 4 * g: 4 * g + 4] / math.sqrt(39)
        torch.testing.assert_close(q.T @ q, torch.eye(4), atol=1e-3, rtol=0)


def test_arb_loss_matches_the_formula():
    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    s1, s2 = standardize(z1), standardize(z2)
    b1, b2 = arb_base(s1), arb_base(s2)
    total = 0.0
    for a, b in ((s1, b2), (s2, b1)):
        for d in range(4):
            c = sum(a[n, d].item() * b[n, d].item() for n in range(10)) / 9
            total += (c - 1) ** 2
    assert arb_loss(z1, z2).item() == pytest.approx(total, rel=1e-4)


def test_arb_loss_is_near_zero_for_views_equal_to_their_base():
    z = standardize(torch.randn(200, 4))
    b = arb_base(z, eps=0.0)
    assert arb_loss(b, b).item() < 1e-3


# --- instance discrimination -------------------------------------------------------------------

def test_memory_bank_update_rule():
    bank = MemoryBank(6, 4, momentum=0.5)
    before = bank.features.clone()
    f = F.normalize(torch.randn(2, 4), dim=1)
    idx = torch.tensor([1, 4])
    bank.update(idx, f)
    for row, i in enumerate(idx.tolist()):
        expected = 0.5 * before[i] + 0.5 * f[row]
        torch.testing.assert_close(bank.features[i], expected / expected.norm())
    untouched = [0, 2, 3, 5]
    torch.testing.assert_close(bank.features[untouched], before[untouched])
    torch.testing.assert_close(bank.features.norm(dim=1), torch.ones(6))


def test_nce_loss_matches_the_formula():
    pos, noise, log_z, n = torch.randn(3), torch.randn(3, 5), torch.tensor(2.5), 40
    k, total = 5, 0.0
    for b in range(3):
        p = math.exp(pos[b].item()) / math.exp(log_z.item())
        total += -math.log(p / (p + k / n))
        for j in range(k):
            q = math.exp(noise[b, j].item()) / math.exp(log_z.item())
            total += -math.log(1 - q / (q + k / n))
    assert nce_loss(pos, noise, log_z, n).item() == pytest.approx(total / 3, rel=1e-5)


def test_nce_normaliser_is_a_moving_average():
    from vidbench.models import create_model
    from vidbench.ssl import build_method, method_config

    vit = create_model("vit_tiny", img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0)
    m = build_method("instdisc", vit, num_images=20, config=method_config("instdisc", feat_dim=8, num_negatives=20,
                                                                           z_momentum=0.75))
    x, idx = torch.randn(4, 3, 16, 16), torch.arange(4)
    m([x], idx)
    z1 = m.log_z.exp().item()
    captured = {}
    original = m._update_z
    m._update_z = lambda logits, n: (captured.update(z=n * logits.exp().mean().item()), original(logits, n))
    m([x], idx + 4)
    assert m.log_z.exp().item() == pytest.approx(0.75 * z1 + 0.25 * captured["z"], rel=1e-4)


# --- pairwise contrastive ----------------------------------------------------------------------

def test_contrastive_loss_matches_hadsell_formula():
    x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    x2 = torch.tensor([[3.0, 4.0], [0.3, 0.4], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])  # similar, dissimilar (D = 0.5 < m), dissimilar (D = 0)
    m = 2.0
    expected = (0.5 * 25 + 0.5 * (2.0 - 0.5) ** 2 + 0.5 * 2.0 ** 2) / 3
    assert contrastive_loss(x1, x2, y, m).item() == pytest.approx(expected, rel=1e-5)
    far = torch.tensor([[10.0, 0.0]])
    assert contrastive_loss(torch.zeros(1, 2), far, torch.tensor([1]), m).item() == 0.0  # beyond the margin


def test_pairwise_contrastive_loss_over_all_pairs():
    z1, z2, m = torch.randn(4, 3), torch.randn(4, 3), 1.5
    pos = sum(((z1[i] - z2[i]) ** 2).sum().item() / 2 for i in range(4)) / 4
    neg = [max(0.0, m - (z1[i] - z2[j]).norm().item()) ** 2 / 2 for i in range(4) for j in range(4) if i != j]
    assert pairwise_contrastive_loss(z1, z2, m).item() == pytest.approx(pos + sum(neg) / len(neg), rel=1e-5)
