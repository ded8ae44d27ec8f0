"""The convolution through the Fourier transform is the convolution: exactly in float64 (outputs and
all three gradients), to float32 rounding in float32, near bf16 rounding in bf16, in the layouts the
layer gets and gives."""

import pytest
import torch
import torch.nn.functional as F

from capsnet.nn import conv_fourier
from capsnet.nn.conv_fourier import _Grid, conv_by_fourier

# (batch, in channels, out channels, height, width, kernel, stride): PrimaryCaps' own geometry, grids
# of odd and even sizes, inputs with rows the convolution never reads (cut) and with too few for whole
# phases (padded), stride 1 and 3.
SHAPES = [
    (3, 5, 7, 20, 20, 9, 2),
    (2, 3, 5, 21, 20, 9, 2),
    (2, 4, 3, 11, 13, 3, 1),
    (2, 3, 4, 17, 14, 5, 3),
    (1, 2, 2, 9, 9, 9, 2),
]


def _both(shape, dtype, channels_last=False):
    batch, channels, out_channels, height, width, kernel, stride = shape
    inputs = torch.randn(batch, channels, height, width, dtype=dtype)
    weight = torch.randn(out_channels, channels, kernel, kernel, dtype=dtype)
    if channels_last:
        inputs = inputs.to(memory_format=torch.channels_last)
        weight = weight.to(memory_format=torch.channels_last)
    bias = torch.randn(out_channels, dtype=dtype)
    return [t.requires_grad_() for t in (inputs, weight, bias)], stride


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_exact_in_float64(shape):
    torch.manual_seed(0)
    (inputs, weight, bias), stride = _both(shape, torch.float64)
    expected = F.conv2d(inputs, weight, bias, stride=stride)
    output = conv_by_fourier(inputs, weight, bias, stride)
    assert output.shape == expected.shape
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-11)
    grad = torch.randn_like(expected)
    for got, want in zip(
        torch.autograd.grad(output, (inputs, weight, bias), grad),
        torch.autograd.grad(expected, (inputs, weight, bias), grad),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_gradcheck():
    torch.manual_seed(0)
    (inputs, weight, bias), stride = _both((2, 2, 3, 8, 7, 3, 2), torch.float64)
    assert torch.autograd.gradcheck(conv_by_fourier, (inputs, weight, bias, stride))


def test_float32_as_accurate_as_the_direct_convolution():
    """PrimaryCaps' geometry and scales (ReLU inputs, weights of variance 1 / fan-in), channels-last like
    the model: against float64, each of the output and the two gradients is within 3x the direct float32
    convolution's error (the measured ratios: docs/speed.md), and the gradients come in their tensors'
    layouts (autograd would copy others, outside compiled graphs)."""
    torch.manual_seed(0)
    inputs = torch.randn(4, 64, 20, 20).relu().to(memory_format=torch.channels_last).requires_grad_()
    weight = (torch.randn(32, 64, 9, 9) / (64 * 81) ** 0.5).to(memory_format=torch.channels_last)
    weight.requires_grad_()
    bias = torch.randn(32)
    exact = F.conv2d(inputs.double(), weight.double(), bias.double(), stride=2)
    grad = torch.randn_like(exact)
    exact_all = (exact, *torch.autograd.grad(exact, (inputs, weight), grad))

    def errors(conv):
        output = conv(inputs, weight, bias, 2)
        ours = (output, *torch.autograd.grad(output, (inputs, weight), grad.float()))
        return [
            ((a.double() - b).abs().max() / b.abs().max()).item()
            for a, b in zip(ours, exact_all, strict=True)
        ]

    direct = errors(lambda x, w, b, s: F.conv2d(x, w, b, stride=s))
    fourier = errors(conv_by_fourier)
    assert all(f <= 3 * d for f, d in zip(fourier, direct, strict=True)), (fourier, direct)
    output = conv_by_fourier(inputs, weight, bias, 2)
    output.backward(torch.ones_like(output))
    assert inputs.grad.is_contiguous(memory_format=torch.channels_last)
    assert weight.grad.is_contiguous(memory_format=torch.channels_last)


def test_bf16_within_two_and_a_half_times_the_direct_bf16_convolutions_error():
    """In bf16 (each matmul, transforms and products, on bf16 operands, summed in float32, its result
    rounded to bf16), PrimaryCaps' geometry and scales: against the float64 convolution of the float32
    operands, the output and both gradients are within 2.5x the direct bf16 convolution's error, by
    relative norm (the measured ratios: docs/speed.md)."""
    torch.manual_seed(0)
    inputs = torch.randn(8, 64, 20, 20).relu().to(memory_format=torch.channels_last)
    weight = (torch.randn(32, 64, 9, 9) / (64 * 81) ** 0.5).to(memory_format=torch.channels_last)
    bias = torch.randn(32) * 0.1
    grad = torch.randn(8, 32, 6, 6)

    def results(conv, dtype):
        operands = [t.to(dtype).requires_grad_() for t in (inputs, weight, bias)]
        output = conv(*operands, 2)
        return (output, *torch.autograd.grad(output, operands[:2], grad.to(dtype)))

    exact = results(lambda x, w, b, s: F.conv2d(x, w, b, stride=s), torch.float64)

    def errors(conv):
        ours = results(conv, torch.bfloat16)
        return [((a.double() - b).norm() / b.norm()).item() for a, b in zip(ours, exact, strict=True)]

    direct = errors(lambda x, w, b, s: F.conv2d(x, w, b, stride=s))
    fourier = errors(conv_by_fourier)
    assert all(f <= 2.5 * d for f, d in zip(fourier, direct, strict=True)), (fourier, direct)


def test_compiles_whole():
    torch.manual_seed(0)
    (inputs, weight, bias), stride = _both((2, 4, 3, 20, 20, 9, 2), torch.float32)
    compiled = torch.compile(conv_by_fourier, fullgraph=True)  # no graph breaks
    output = compiled(inputs, weight, bias, stride)
    torch.testing.assert_close(output, F.conv2d(inputs, weight, bias, stride=stride), rtol=1e-5, atol=2e-5)
    output.sum().backward()
    assert inputs.grad is not None and weight.grad is not None


@pytest.mark.parametrize("rows, cols", [(10, 10), (11, 13), (1, 1), (4, 9)])
def test_kept_frequencies_stand_for_the_whole_spectrum(rows, cols):
    """Each kept frequency stands for itself and, where it has one, its conjugate partner: together the
    whole N_h x N_w spectrum, once."""
    grid = _Grid(rows, cols, 1, 1)  # a 1 x 1 kernel: the grid is the input
    assert (grid.rows, grid.cols) == (rows, cols)
    full = set()
    for (u, v), count in zip(grid._uv.long().tolist(), grid._counts.tolist(), strict=True):
        partner = ((-u) % rows, (-v) % cols)
        assert count == (1.0 if partner == (u, v) else 2.0)
        full |= {(u, v), partner}
    assert len(full) == rows * cols and grid._counts.sum() == rows * cols
    # complex frequencies first, then the real ones, whose products are a single real matmul
    assert grid._counts.tolist() == [2.0] * grid.complex + [1.0] * (grid.frequencies - grid.complex)


def test_primary_caps_grid():
    grid = _Grid(20, 20, 9, 2)
    assert (grid.out_h, grid.taps, grid.rows, grid.frequencies, grid.complex) == (6, 5, 10, 52, 48)


def test_taken_in_float32_everywhere_and_in_bf16_with_avx512_bf16_and_no_amx_from_48_images():
    capabilities = torch.cpu.get_capabilities()
    bf16_dot_products = capabilities.get("avx512_bf16") and not capabilities.get("amx_bf16")
    assert conv_fourier.runs_by_fourier(torch.float32, 48)
    assert conv_fourier.runs_by_fourier(torch.bfloat16, 128) == bf16_dot_products
    assert not conv_fourier.runs_by_fourier(torch.float16, 128)
    assert not conv_fourier.runs_by_fourier(torch.float32, 47)
    assert not conv_fourier.runs_by_fourier(torch.bfloat16, 32)


def test_fourier_form_for_sets_the_form_and_gives_the_cpus_back():
    before = [conv_fourier.runs_by_fourier(dtype, 128) for dtype in (torch.float32, torch.bfloat16)]
    with conv_fourier.fourier_form_for(torch.bfloat16):
        assert conv_fourier.runs_by_fourier(torch.bfloat16, 1)
        assert not conv_fourier.runs_by_fourier(torch.float32, 128)
    assert [conv_fourier.runs_by_fourier(dtype, 128) for dtype in (torch.float32, torch.bfloat16)] == before
