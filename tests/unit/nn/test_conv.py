"""The PrimaryCaps convolution, in each of its CPU forms, is PyTorch's convolution."""

import pytest
import torch
import torch.nn.functional as F

from capsnet.nn import conv_fourier
from capsnet.nn.conv import FastWeightGradConv2d


@pytest.fixture(params=[False, True], ids=["onednn", "fourier"])
def form(request, monkeypatch):
    """The layer in oneDNN's kernels, and through the Fourier transform (float32 on AVX2), on any CPU."""
    monkeypatch.setattr(conv_fourier, "_AVX2_CPU", request.param)


@pytest.mark.parametrize("shape", [(3, 16, 20, 20), (2, 16, 21, 19)])
def test_same_outputs_and_gradients_as_conv2d(shape, form):
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


def test_inference_is_the_convolution(form):
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(8, 8, 9, stride=2)
    inputs = torch.randn(2, 8, 20, 20)
    with torch.inference_mode():
        assert torch.allclose(layer(inputs), F.conv2d(inputs, layer.weight, layer.bias, stride=2), atol=1e-5)


def test_the_same_under_torch_compile(form):
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(8, 8, 9, stride=2).to(memory_format=torch.channels_last)
    inputs = torch.randn(2, 8, 20, 20, requires_grad=True)
    expected = layer(inputs)
    expected.square().sum().backward()
    expected_grads = inputs.grad, layer.weight.grad
    inputs.grad = layer.weight.grad = None
    outputs = torch.compile(layer)(inputs)
    outputs.square().sum().backward()
    assert torch.allclose(outputs, expected, atol=1e-5)
    assert torch.allclose(inputs.grad, expected_grads[0], atol=1e-5)
    assert torch.allclose(layer.weight.grad, expected_grads[1], rtol=1e-4, atol=1e-4)


def test_bf16_autocast_gradients_close_to_fp32(form):
    torch.manual_seed(0)
    conv_layer = FastWeightGradConv2d(32, 32, 9, stride=2)
    inputs = torch.rand(4, 32, 20, 20)
    conv_layer(inputs).square().sum().backward()
    fp32_grad = conv_layer.weight.grad.clone()
    conv_layer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv_layer(inputs)
    assert output.dtype == torch.bfloat16
    output.float().square().sum().backward()
    assert conv_layer.weight.grad.dtype == torch.float32
    relative = (conv_layer.weight.grad - fp32_grad).norm() / fp32_grad.norm()
    assert relative < 0.02
