"""The PrimaryCaps convolution's fast gradients are PyTorch's convolution gradients."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from capsnet.nn import conv
from capsnet.nn.conv import FastWeightGradConv2d, conv_input_gradient


@pytest.fixture(params=[False, True], ids=["onednn_input_gradient", "matmul_input_gradient"])
def input_gradient_as_matmuls(request, monkeypatch):
    monkeypatch.setattr(conv, "_AVX2_CPU", request.param)
    return request.param


@pytest.mark.parametrize("shape", [(3, 16, 20, 20), (2, 16, 21, 19)])
def test_same_outputs_and_gradients_as_conv2d(shape, input_gradient_as_matmuls):
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


def convolution_input_gradient(grad_output, weight, stride, inputs):
    return torch.ops.aten.convolution_backward(
        grad_output,
        inputs,
        weight,
        None,
        [stride] * 2,
        [0, 0],
        [1, 1],
        False,
        [0, 0],
        1,
        [True, False, False],
    )[0]


@pytest.mark.parametrize(
    "batch, channels, kernel, stride, height, width, channels_last",
    [
        (35, 8, 9, 2, 20, 20, True),  # more images than one matmul takes
        (3, 16, 9, 2, 21, 19, False),  # rows and columns no window reads
        (2, 5, 3, 1, 7, 9, True),
        (2, 6, 4, 3, 13, 11, False),
    ],
)
def test_matmul_input_gradient_is_the_convolutions(
    batch, channels, kernel, stride, height, width, channels_last
):
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    inputs = torch.randn(batch, channels, height, width).contiguous(memory_format=memory_format)
    weight = torch.randn(7, channels, kernel, kernel).contiguous(memory_format=memory_format)
    grad_output = torch.randn_like(torch.nn.functional.conv2d(inputs, weight, stride=stride))
    expected = convolution_input_gradient(grad_output, weight, stride, inputs)
    grad_inputs = conv_input_gradient(grad_output, weight, stride, height, width)
    assert grad_inputs.shape == expected.shape
    assert torch.allclose(grad_inputs, expected, atol=1e-4)


def test_matmul_input_gradient_is_a_well_formed_op_with_the_matmuls_flops():
    torch.manual_seed(0)
    inputs = torch.randn(2, 4, 11, 11)
    weight = torch.randn(6, 4, 3, 3)
    grad_output = torch.randn(2, 6, 5, 5)
    torch.library.opcheck(torch.ops.capsnet.conv_input_gradient, (grad_output, weight, 2, 11, 11))
    with FlopCounterMode(display=False) as counted:
        conv_input_gradient(grad_output, weight, 2, 11, 11)
    with FlopCounterMode(display=False) as expected:
        convolution_input_gradient(grad_output, weight, 2, inputs)
    assert counted.get_total_flops() == expected.get_total_flops() == 2 * 2 * 25 * 6 * 4 * 9


def test_matmul_input_gradient_under_torch_compile(monkeypatch):
    monkeypatch.setattr(conv, "_AVX2_CPU", True)
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(8, 8, 9, stride=2).to(memory_format=torch.channels_last)
    inputs = torch.randn(2, 8, 20, 20, requires_grad=True)
    layer(inputs).square().sum().backward()
    expected = inputs.grad
    inputs.grad = None
    torch.compile(layer)(inputs).square().sum().backward()
    assert torch.allclose(inputs.grad, expected, atol=1e-5)


def test_the_matmul_input_gradient_only_in_float32_on_avx2(monkeypatch):
    monkeypatch.setattr(conv, "_AVX2_CPU", True)
    assert conv.input_gradient_as_matmuls(torch.float32)
    assert not conv.input_gradient_as_matmuls(torch.bfloat16)
    monkeypatch.setattr(conv, "_AVX2_CPU", False)
    assert not conv.input_gradient_as_matmuls(torch.float32)


def test_bf16_autocast_gradients_close_to_fp32():
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
