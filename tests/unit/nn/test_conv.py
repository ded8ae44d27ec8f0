"""The PrimaryCaps convolution's fast weight gradient is PyTorch's convolution gradient."""

import pytest
import torch

from capsnet.nn.conv import FastWeightGradConv2d


@pytest.mark.parametrize("shape", [(3, 16, 20, 20), (2, 16, 21, 19)])
def test_same_outputs_and_gradients_as_conv2d(shape):
    torch.manual_seed(0)
    fast = FastWeightGradConv2d(16, 24, 9, stride=2)
    reference = torch.nn.Conv2d(16, 24, 9, stride=2)
    reference.load_state_dict(fast.state_dict())
    inputs = torch.randn(*shape, requires_grad=True)
    reference_inputs = inputs.detach().clone().requires_grad_()
    output = fast(inputs)
    expected = reference(reference_inputs)
    assert torch.allclose(output, expected, atol=1e-5)
    grad = torch.randn_like(output)
    output.backward(grad)
    expected.backward(grad)
    assert torch.allclose(inputs.grad, reference_inputs.grad, atol=1e-5)
    assert torch.allclose(fast.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-4)
    assert torch.allclose(fast.bias.grad, reference.bias.grad, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_gradients_close_to_fp32():
    torch.manual_seed(0)
    conv = FastWeightGradConv2d(32, 32, 9, stride=2)
    inputs = torch.rand(4, 32, 20, 20)
    conv(inputs).square().sum().backward()
    fp32_grad = conv.weight.grad.clone()
    conv.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv(inputs)
    assert output.dtype == torch.bfloat16
    output.float().square().sum().backward()
    assert conv.weight.grad.dtype == torch.float32
    relative = (conv.weight.grad - fp32_grad).norm() / fp32_grad.norm()
    assert relative < 0.02
