"""The convolution as matmuls over kernel rows is PyTorch's convolution, forward and input gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from capsnet.nn import conv_matmuls
from capsnet.nn.conv_matmuls import conv_as_matmuls, conv_input_gradient_as_matmuls

SHAPES = [  # batch, channels, kernel, stride, height, width, channels_last
    (35, 8, 9, 2, 20, 20, True),  # more images than one matmul takes
    (3, 16, 9, 2, 21, 19, False),  # rows and columns no window reads
    (2, 5, 3, 1, 7, 9, True),
    (2, 6, 4, 3, 13, 11, False),
]


def convolution(batch, channels, kernel, stride, height, width, channels_last):
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    inputs = torch.randn(batch, channels, height, width).contiguous(memory_format=memory_format)
    weight = torch.randn(7, channels, kernel, kernel).contiguous(memory_format=memory_format)
    return inputs, weight, torch.randn(7)


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


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_is_the_convolution(shape):
    inputs, weight, bias = convolution(*shape)
    stride = shape[3]
    expected = F.conv2d(inputs, weight, bias, stride=stride)
    outputs = conv_as_matmuls(inputs, weight, bias, stride)
    assert outputs.shape == expected.shape
    assert torch.allclose(outputs, expected, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_input_gradient_is_the_convolutions(shape):
    inputs, weight, _ = convolution(*shape)
    stride, (height, width) = shape[3], inputs.shape[2:]
    grad_output = torch.randn_like(F.conv2d(inputs, weight, stride=stride))
    expected = convolution_input_gradient(grad_output, weight, stride, inputs)
    grad_inputs = conv_input_gradient_as_matmuls(grad_output, weight, stride, height, width)
    assert grad_inputs.shape == expected.shape
    assert torch.allclose(grad_inputs, expected, atol=1e-4)


def test_well_formed_ops_that_count_the_convolutions_flops():
    inputs, weight, bias = convolution(2, 4, 3, 2, 11, 11, False)
    grad_output = torch.randn(2, 7, 5, 5)
    torch.library.opcheck(torch.ops.capsnet.conv_as_matmuls, (inputs, weight, bias, 2))
    torch.library.opcheck(torch.ops.capsnet.conv_input_gradient_as_matmuls, (grad_output, weight, 2, 11, 11))
    flops = {}
    for name, run in {
        "matmuls": lambda: (
            conv_as_matmuls(inputs, weight, bias, 2),
            conv_input_gradient_as_matmuls(grad_output, weight, 2, 11, 11),
        ),
        "convolutions": lambda: (
            F.conv2d(inputs, weight, bias, stride=2),
            convolution_input_gradient(grad_output, weight, 2, inputs),
        ),
    }.items():
        with FlopCounterMode(display=False) as counter:
            run()
        flops[name] = counter.get_total_flops()
    assert flops["matmuls"] == flops["convolutions"] == 2 * (2 * 50 * 7 * 4 * 9)  # 2 ops, 50 positions


def test_only_in_float32_on_avx2(monkeypatch):
    monkeypatch.setattr(conv_matmuls, "_AVX2_CPU", True)
    assert conv_matmuls.runs_as_matmuls(torch.float32)
    assert not conv_matmuls.runs_as_matmuls(torch.bfloat16)
    monkeypatch.setattr(conv_matmuls, "_AVX2_CPU", False)
    assert not conv_matmuls.runs_as_matmuls(torch.float32)
