"""Routing-by-agreement (Procedure 1) against a plain reference loop; coupling entropy."""

import math
from itertools import pairwise

import pytest
import torch

from capsnet.nn.capsules import DigitCapsules
from capsnet.nn.leaky_routing import LeakyRouting
from capsnet.nn.routing import DynamicRouting, build_routing, coupling_entropy
from capsnet.nn.self_attention_routing import SelfAttentionRouting


def softmax_over_parents(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=0)


def leaky_softmax_over_parents(logits: torch.Tensor) -> torch.Tensor:
    """c_j = exp(b_j) / (1 + sum_k exp(b_k)): the orphan parent's logit is 0."""
    return torch.exp(logits) / (1 + torch.exp(logits).sum())


def reference_routing(
    u: torch.Tensor,
    weight: torch.Tensor,
    iterations: int,
    bias: torch.Tensor | None = None,
    normalise=softmax_over_parents,
):
    """Procedure 1 written out loop by loop, one example and one capsule at a time, from u_hat = W u
    (with the official code's bias added to each s_j when ``bias`` [J, D] is given; ``normalise``: a
    child's logits over the parents -> its couplings)."""
    batch, children, _ = u.shape
    parents = weight.shape[2]
    outputs, last_couplings = [], []
    for b in range(batch):
        u_hat = [[weight[i, :, j, :].T @ u[b, i] for j in range(parents)] for i in range(children)]
        logits = torch.zeros(children, parents, dtype=u.dtype)
        for _ in range(iterations):
            couplings = torch.stack([normalise(logits[i]) for i in range(children)])
            v = []
            for j in range(parents):
                s_j = sum(couplings[i, j] * u_hat[i][j] for i in range(children))
                if bias is not None:
                    s_j = s_j + bias[j]
                norm_sq = (s_j**2).sum()
                v.append(norm_sq / (1 + norm_sq) * s_j / torch.sqrt(norm_sq))
            for i in range(children):
                for j in range(parents):
                    logits[i, j] = logits[i, j] + torch.dot(u_hat[i][j], v[j])
        outputs.append(torch.stack(v))
        last_couplings.append(couplings)
    return torch.stack(outputs), torch.stack(last_couplings)


def random_layer(batch=3, children=12, child_dim=5, parents=4, parent_dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, children, child_dim, generator=generator) * 0.5
    weight = torch.randn(children, child_dim, parents, parent_dim, generator=generator) * 0.5
    return u, weight


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_matches_reference_loop(iterations):
    u, weight = random_layer(seed=iterations)
    result = DynamicRouting(iterations)(u, weight)
    expected_v, expected_c = reference_routing(u, weight, iterations)
    assert torch.allclose(result.outputs, expected_v, atol=1e-5)
    assert torch.allclose(result.couplings[-1], expected_c, atol=1e-5)
    assert len(result.couplings) == iterations


@pytest.mark.parametrize("iterations", [1, 3])
def test_with_a_bias_matches_reference_loop(iterations):
    u, weight = random_layer(seed=10 + iterations)
    bias = torch.randn(weight.shape[2], weight.shape[3], generator=torch.Generator().manual_seed(1)) * 0.3
    result = DynamicRouting(iterations)(u, weight, bias)
    expected_v, expected_c = reference_routing(u, weight, iterations, bias)
    assert torch.allclose(result.outputs, expected_v, atol=1e-5)
    assert torch.allclose(result.couplings[-1], expected_c, atol=1e-5)
    assert not torch.allclose(result.outputs, DynamicRouting(iterations)(u, weight).outputs, atol=1e-3)


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_leaky_routing_matches_reference_loop(iterations):
    u, weight = random_layer(seed=20 + iterations)
    result = LeakyRouting(iterations)(u, weight)
    expected_v, expected_c = reference_routing(u, weight, iterations, normalise=leaky_softmax_over_parents)
    assert torch.allclose(result.outputs, expected_v, atol=1e-5)
    assert torch.allclose(result.couplings[-1], expected_c, atol=1e-5)
    assert (result.couplings[-1].sum(dim=2) < 1).all()  # the orphan takes the rest
    assert torch.allclose(result.couplings[0], torch.full_like(result.couplings[0], 1 / 5))  # 4 parents + 1


def reference_self_attention(u: torch.Tensor, weight: torch.Tensor, log_prior: torch.Tensor):
    """Self-attention routing (Efficient-CapsNet) loop by loop: A_ij = sum_k u_hat_{j|i} . u_hat_{j|k} /
    sqrt(D), c_i = softmax_j(A_i) + p_i, s_j = sum_i c_ij u_hat_{j|i}, v_j = squash(s_j)."""
    batch, children, _ = u.shape
    parents, parent_dim = weight.shape[2:]
    outputs, all_couplings = [], []
    for b in range(batch):
        u_hat = [[weight[i, :, j, :].T @ u[b, i] for j in range(parents)] for i in range(children)]
        scores = torch.tensor(
            [
                [sum(torch.dot(u_hat[i][j], u_hat[k][j]) for k in range(children)) for j in range(parents)]
                for i in range(children)
            ]
        ) / math.sqrt(parent_dim)
        couplings = torch.stack([torch.softmax(scores[i], dim=0) for i in range(children)]) + log_prior
        v = []
        for j in range(parents):
            s_j = sum(couplings[i, j] * u_hat[i][j] for i in range(children))
            norm_sq = (s_j**2).sum()
            v.append(norm_sq / (1 + norm_sq) * s_j / torch.sqrt(norm_sq))
        outputs.append(torch.stack(v))
        all_couplings.append(couplings)
    return torch.stack(outputs), torch.stack(all_couplings)


def test_self_attention_routing_matches_reference_loop():
    u, weight = random_layer(seed=30)
    routing = SelfAttentionRouting(children=12, parents=4)
    with torch.no_grad():
        routing.log_prior.copy_(torch.randn(12, 4, generator=torch.Generator().manual_seed(2)) * 0.1)
    result = routing(u, weight)
    expected_v, expected_c = reference_self_attention(u, weight, routing.log_prior.detach())
    assert torch.allclose(result.outputs, expected_v, atol=1e-5)
    (couplings,) = result.couplings
    assert torch.allclose(couplings, expected_c, atol=1e-5)
    assert routing.passes == 1 and routing.log_prior.shape == (12, 4)


def test_build_routing_makes_the_named_routing_and_refuses_others_by_name():
    assert type(build_routing({"iterations": 2}, children=12, parents=4)) is DynamicRouting  # old checkpoints
    leaky = build_routing({"_target_": "capsnet.nn.leaky_routing.LeakyRouting", "iterations": 2}, 12, 4)
    assert type(leaky) is LeakyRouting and leaky.passes == 2
    with pytest.raises(ValueError, match=r"routing._target_='os.system': a routing is a class of capsnet.nn"):
        build_routing({"_target_": "os.system"}, 12, 4)
    with pytest.raises(ValueError, match=r"routing._target_='capsnet.nn.squash.squash' is not a Routing"):
        build_routing({"_target_": "capsnet.nn.squash.squash"}, 12, 4)
    with pytest.raises(ValueError, match=r"routing=SelfAttentionRouting: .*iterations"):
        build_routing(
            {"_target_": "capsnet.nn.self_attention_routing.SelfAttentionRouting", "iterations": 3}, 12, 4
        )


def test_couplings_sum_to_one_over_parents():
    u, weight = random_layer(batch=5, children=20, parents=10)
    for coupling in DynamicRouting(3)(u, weight).couplings:
        assert coupling.shape == (5, 20, 10)
        assert torch.allclose(coupling.sum(dim=2), torch.ones(5, 20), atol=1e-6)


def test_one_iteration_is_uniform():
    u, weight = random_layer(batch=2, children=7, parents=10)
    (coupling,) = DynamicRouting(1)(u, weight).couplings
    assert torch.allclose(coupling, torch.full((2, 7, 10), 0.1))


def test_logits_start_at_zero_for_every_example():
    """Routing one example alone gives the same result as routing it in a batch (no shared logits)."""
    u, weight = random_layer(batch=4, children=30, parents=10)
    routing = DynamicRouting(3)
    together = routing(u, weight).outputs
    alone = torch.cat([routing(u[i : i + 1], weight).outputs for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_digit_capsules_route_their_own_predictions():
    layer = DigitCapsules(
        in_caps=9, in_dim=8, out_caps=10, out_dim=16, routing=DynamicRouting(3), weight_init_std=0.3
    )
    u = torch.randn(2, 9, 8)
    predictions = layer.predictions(u)  # u_hat, [B, I, J, D]
    assert torch.allclose(predictions[1, 4, 7], layer.weight[4, :, 7, :].T @ u[1, 4], atol=1e-6)
    expected_v, _ = reference_routing(u, layer.weight.detach(), 3)
    assert torch.allclose(layer(u).outputs, expected_v, atol=1e-5)


def test_detach_inner_keeps_outputs_changes_gradients():
    u, weight = random_layer()
    u.requires_grad_(True)
    results = []
    for detach in (False, True):
        outputs = DynamicRouting(3, detach_inner=detach)(u, weight).outputs
        (grad,) = torch.autograd.grad(outputs.pow(2).sum(), u)
        results.append((outputs.detach(), grad))
    assert torch.allclose(results[0][0], results[1][0])
    assert not torch.allclose(results[0][1], results[1][1])


def test_zero_iterations_rejected():
    with pytest.raises(ValueError, match="iterations"):
        DynamicRouting(0)


def explicit_routing(u: torch.Tensor, weight: torch.Tensor, iterations: int) -> torch.Tensor:
    """Procedure 1 on materialised predictions u_hat, vectorised, for autograd to differentiate."""
    u_hat = torch.einsum("bik,ikjd->bijd", u, weight)
    logits = torch.zeros(u_hat.shape[:3], dtype=u.dtype)
    for iteration in range(iterations):
        couplings = torch.softmax(logits, dim=2)
        s = (couplings.unsqueeze(-1) * u_hat).sum(dim=1)
        norm_sq = s.pow(2).sum(-1, keepdim=True)
        v = norm_sq / (1 + norm_sq) * s / torch.sqrt(norm_sq)
        if iteration < iterations - 1:
            logits = logits + (u_hat * v.unsqueeze(1)).sum(-1)
    return v


@pytest.mark.parametrize("iterations", [1, 3])
def test_gradients_match_explicit_predictions(iterations):
    u, weight = random_layer(batch=4, children=10, child_dim=8, parents=5, parent_dim=16, seed=7)
    u, weight = u.double().requires_grad_(), weight.double().requires_grad_()
    target = torch.randn(4, 5, 16, dtype=torch.float64)
    ours = torch.autograd.grad(
        (DynamicRouting(iterations)._route(u, weight).outputs * target).sum(), [u, weight]
    )
    theirs = torch.autograd.grad((explicit_routing(u, weight, iterations) * target).sum(), [u, weight])
    for mine, expected in zip(ours, theirs, strict=True):
        # Equal up to the eps = 1e-8 that squash adds under its square root (~1e-8 relative).
        assert (mine - expected).norm() < 1e-6 * expected.norm()


def test_entropy_of_uniform_and_one_hot_couplings():
    uniform = torch.full((2, 5, 10), 0.1)
    one_hot = torch.zeros(2, 5, 10).index_fill_(2, torch.tensor([3]), 1.0)  # exact zeros: 0 log 0 = 0
    assert coupling_entropy(uniform).item() == pytest.approx(math.log(10), abs=1e-6)
    assert coupling_entropy(one_hot).item() == 0.0


def test_entropy_falls_each_iteration_when_children_agree():
    """Every child predicts the same long vector for parent 0 and noise for the others: routing
    should couple them ever more to parent 0, so the entropy never rises."""
    torch.manual_seed(0)
    children, child_dim, parents, parent_dim = 64, 8, 10, 16
    u = torch.ones(4, children, child_dim) / math.sqrt(child_dim)
    weight = 0.01 * torch.randn(children, child_dim, parents, parent_dim)
    weight[:, :, 0, :] = 0.5 / math.sqrt(child_dim)  # identical predictions for parent 0
    couplings = DynamicRouting(iterations=5)(u, weight).couplings
    entropies = [coupling_entropy(c).item() for c in couplings]
    assert all(math.isfinite(e) for e in entropies)
    assert entropies[0] == pytest.approx(math.log(parents), abs=1e-6)
    assert all(later <= earlier for earlier, later in pairwise(entropies))
    assert entropies[-1] < 0.5 * entropies[0]


@pytest.mark.parametrize("routing_class", [DynamicRouting, LeakyRouting])
def test_bf16_routing_stays_near_the_reference_and_float32_elsewhere(routing_class):
    """routing.precision=bf16: under bf16 autocast the votes' products are bfloat16, the outputs and
    couplings float32 and near the float32 routing's; without autocast it is the float32 routing."""
    u, weight = random_layer(batch=4, children=64, child_dim=8, parents=10, parent_dim=16, seed=7)
    exact = routing_class(3)(u, weight)
    low = routing_class(3, precision="bf16")
    assert torch.equal(low(u, weight).outputs, exact.outputs)  # no autocast: float32 throughout
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = low(u, weight)
        kept = routing_class(3)(u, weight)  # precision=float32 ignores autocast
    assert torch.equal(kept.outputs, exact.outputs)
    assert result.outputs.dtype == torch.float32 and result.couplings[-1].dtype == torch.float32
    assert not torch.equal(result.outputs, exact.outputs)  # bfloat16 did compute something
    # bfloat16 keeps ~3 significant digits; agreements here are large, so the softmax magnifies them
    assert torch.allclose(result.outputs, exact.outputs, atol=1e-2)
    assert torch.allclose(result.couplings[-1], exact.couplings[-1], atol=2e-2)


def test_an_unknown_routing_precision_is_refused_by_name():
    with pytest.raises(ValueError, match=r"routing\.precision='fp16': one of float32, bf16"):
        DynamicRouting(3, precision="fp16")
