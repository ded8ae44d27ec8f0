"""A compiled bf16 run on a CPU whose bf16 is slow computes its products in float32
(``capsnet.nn.bf16_in_float32``); every other run keeps its kernels."""

from types import SimpleNamespace

import pytest
import torch
import torch._inductor.config

from capsnet.models import capsnet as capsnet_module
from capsnet.nn import bf16_in_float32
from capsnet.run.tasks import build_model
from tests.helpers import compose_config
from tests.unit.nn.test_bf16_in_float32 import RecordingPass


def _trainer(device: str, precision: str):
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)), precision=precision)


@pytest.mark.parametrize(
    ("device", "precision", "compile", "slow", "installed"),
    [
        ("cpu", "bf16-mixed", True, True, True),  # an AVX2-only CPU
        ("cpu", "bf16-mixed", True, False, False),  # AVX-512 BF16, AMX: bf16's own kernels
        ("cpu", "bf16-mixed", False, True, False),  # eager: oneDNN's kernels (the run warns)
        ("cpu", "32-true", True, True, False),
        ("meta", "bf16-mixed", True, True, False),  # not a CPU run
    ],
)
def test_a_compiled_bf16_run_on_a_slow_bf16_cpu_puts_the_pass_in_place(
    monkeypatch, tiny_overrides, device, precision, compile, slow, installed
):
    monkeypatch.setattr(capsnet_module, "slow_bfloat16", lambda: (1.7, 40.0) if slow else None)
    module = build_model(compose_config("train", [*tiny_overrides, f"model.compile={compile}"]))
    monkeypatch.setattr(module.net, "compile", lambda: None)  # what is compiled is not this test's
    monkeypatch.setattr(type(module), "trainer", _trainer(device, precision))
    with torch._inductor.config.patch(post_grad_custom_post_pass=None, emulate_precision_casts=False):
        module.setup("fit")
        assert bf16_in_float32.installed() == installed == module.bf16_products_in_float32


@pytest.mark.slow  # compiles the network (about a minute)
def test_the_compiled_network_computes_bf16_products_in_float32_with_bf16s_loss(tiny_overrides):
    """The whole network's graphs with the pass forced (on any CPU): no bf16 product is left, and one
    training step's loss and gradients are eager bf16's."""
    torch.manual_seed(0)
    module = build_model(compose_config("train", tiny_overrides))
    images, labels = torch.rand(8, *module.net.decoder.image_shape), torch.arange(8) % 10

    def step():
        module.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module._step((images, labels), "train")[0].total
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in module.parameters()])

    eager_loss, eager_grads = step()
    recording = RecordingPass()
    torch._dynamo.reset()
    with torch._inductor.config.patch(bf16_in_float32.settings(recording)):
        module.net.compile()
        compiled_loss, compiled_grads = step()
    torch._dynamo.reset()
    assert {dtype for _, dtype in recording.products} == {torch.float32} and len(recording.products) > 8
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=0.02, atol=0)
    assert ((compiled_grads - eager_grads).norm() / eager_grads.norm()).item() < 0.05
