import pytest
import torch

from capsnet.routing import DynamicRouting


def reference_routing(u_hat: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Procedure 1 written out loop by loop, one example and one capsule at a time."""
    batch, children, parents, _ = u_hat.shape
    outputs, last_couplings = (
        torch.zeros(batch, parents, u_hat.shape[3]),
        torch.zeros(batch, children, parents),
    )
    for b in range(batch):
        logits = torch.zeros(children, parents)
        for _ in range(iterations):
            couplings = torch.stack([torch.softmax(logits[i], dim=0) for i in range(children)])
            v = []
            for j in range(parents):
                s_j = sum(couplings[i, j] * u_hat[b, i, j] for i in range(children))
                norm_sq = (s_j**2).sum()
                v.append(norm_sq / (1 + norm_sq) * s_j / torch.sqrt(norm_sq))
            for i in range(children):
                for j in range(parents):
                    logits[i, j] = logits[i, j] + torch.dot(u_hat[b, i, j], v[j])
        outputs[b], last_couplings[b] = torch.stack(v), couplings
    return outputs, last_couplings


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_matches_reference_loop(iterations):
    torch.manual_seed(iterations)
    u_hat = torch.randn(3, 12, 4, 6) * 0.5
    result = DynamicRouting(iterations)(u_hat)
    expected_v, expected_c = reference_routing(u_hat, iterations)
    assert torch.allclose(result.outputs, expected_v, atol=1e-5)
    assert torch.allclose(result.couplings[-1], expected_c, atol=1e-5)
    assert len(result.couplings) == iterations


def test_couplings_sum_to_one_over_parents():
    u_hat = torch.randn(5, 20, 10, 16)
    for coupling in DynamicRouting(3)(u_hat).couplings:
        assert torch.allclose(coupling.sum(dim=2), torch.ones(5, 20), atol=1e-6)


def test_one_iteration_is_uniform():
    coupling = DynamicRouting(1)(torch.randn(2, 7, 10, 16)).couplings[0]
    assert torch.allclose(coupling, torch.full((2, 7, 10), 0.1))


def test_logits_start_at_zero_for_every_example():
    """Routing one example alone gives the same result as routing it in a batch (no shared logits)."""
    u_hat = torch.randn(4, 30, 10, 8)
    routing = DynamicRouting(3)
    together = routing(u_hat).outputs
    alone = torch.cat([routing(u_hat[i : i + 1]).outputs for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_detach_inner_keeps_outputs_changes_gradients():
    u_hat = torch.randn(2, 9, 5, 4, requires_grad=True)
    grads = []
    for detach in (False, True):
        result = DynamicRouting(3, detach_inner=detach)(u_hat)
        (grad,) = torch.autograd.grad(result.outputs.pow(2).sum(), u_hat)
        grads.append((result.outputs.detach(), grad))
    assert torch.allclose(grads[0][0], grads[1][0])
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_zero_iterations_rejected():
    with pytest.raises(ValueError, match="iterations"):
        DynamicRouting(0)
