"""The PrimaryCaps convolution, in each of its CPU forms, is PyTorch's convolution."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import InductorAndRecordGraphs

from capsnet.nn import conv, conv_fourier
from capsnet.nn.conv import FastWeightGradConv2d


@pytest.fixture(
    params=[(), (torch.float32,), (torch.float32, torch.bfloat16)], ids=["onednn", "fourier", "fourier_bf16"]
)
def form(request, fourier_form):
    """The layer in oneDNN's kernels, through the Fourier transform in float32, and in bf16 too, on any
    CPU."""
    fourier_form(*request.param)


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


@pytest.mark.parametrize("by_fourier", [False, True])
def test_bf16_takes_the_form_its_cpu_is_given(by_fourier, fourier_form):
    """Under bf16 autocast the layer is oneDNN's bf16 convolution, or the Fourier form on bf16 operands
    where bf16 products take it (CPUs with AVX-512 BF16 and no AMX)."""
    fourier_form(*((torch.float32, torch.bfloat16) if by_fourier else (torch.float32,)))
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(16, 8, 9, stride=2)
    inputs = torch.rand(3, 16, 20, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = layer(inputs)
    operands = [t.detach().bfloat16() for t in (inputs, layer.weight, layer.bias)]
    form = conv_fourier.conv_by_fourier if by_fourier else lambda x, w, b, s: F.conv2d(x, w, b, stride=s)
    assert torch.equal(output, form(*operands, 2))


def test_the_fourier_form_from_its_minimum_batch(monkeypatch):
    """Below ``_FOURIER_MIN_BATCH`` images oneDNN's kernels, from it the Fourier form (float32 here)."""
    monkeypatch.setattr(conv_fourier, "_FOURIER_DTYPES", frozenset({torch.float32}))
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(2, 3, 9, stride=2)
    smallest = conv_fourier._FOURIER_MIN_BATCH
    with torch.no_grad():
        for batch, form in ((smallest - 1, F.conv2d), (smallest, conv_fourier.conv_by_fourier)):
            inputs = torch.rand(batch, 2, 20, 20)
            assert torch.equal(layer(inputs), form(inputs, layer.weight, layer.bias, 2))


@pytest.mark.parametrize(
    "shape, kernel, stride",
    [((20, 20), 9, 2), ((21, 19), 9, 2), ((17, 18), 8, 2), ((12, 12), 3, 1), ((23, 20), 5, 3)],
)
def test_input_gradient_by_matmul_is_the_convolutions(shape, kernel, stride, monkeypatch):
    monkeypatch.setattr(conv, "CHUNK_IMAGES", 2)  # 5 images: chunks of 2, 2 and 1
    torch.manual_seed(0)
    inputs = torch.randn(5, 3, *shape, dtype=torch.float64)
    weight = torch.randn(4, 3, kernel, kernel, dtype=torch.float64)
    grad_output = torch.randn_like(F.conv2d(inputs, weight, stride=stride))
    expected = torch.ops.aten.convolution_backward(
        grad_output, inputs, weight, None, [stride] * 2, [0, 0], [1, 1], False, [0, 0], 1,
        [True, False, False],
    )[0]  # fmt: skip
    got = conv.conv_input_gradient(grad_output, weight, stride, shape)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_compiled_bf16_with_amx_takes_the_matmul_input_gradient(monkeypatch, fourier_form):
    """On any CPU: the form AMX CPUs take under torch.compile in bf16, against oneDNN's kernels eager."""
    monkeypatch.setattr(conv, "_AMX_BF16", True)
    fourier_form()
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(16, 16, 9, stride=2).to(memory_format=torch.channels_last)
    inputs = torch.rand(20, 16, 20, 20, requires_grad=True)

    def gradients(run):
        inputs.grad = layer.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = run(inputs)
        outputs.float().square().sum().backward()
        return inputs.grad.clone(), layer.weight.grad.clone()

    eager_inputs_grad, eager_weight_grad = gradients(layer)
    backend = InductorAndRecordGraphs()
    compiled_inputs_grad, compiled_weight_grad = gradients(torch.compile(layer, backend=backend))
    backward = backend.graphs[0].bwd_body_0.code  # the layer's backward as Dynamo traced it
    assert "torch.mm(" in backward and "convolution_backward" not in backward
    relative = (compiled_inputs_grad - eager_inputs_grad).norm() / eager_inputs_grad.norm()
    assert relative < 0.01
    assert torch.allclose(compiled_weight_grad, eager_weight_grad, rtol=0.02, atol=1e-3)
