"""A strided convolution without padding as matmuls over its kernel rows: the forward and the input
gradient of the PrimaryCaps layer in float32 on AVX2 CPUs, where oneDNN's kernels for it run at 0.65-0.85
of the matmul rate (docs/speed.md). The same function; each is an opaque op to torch.compile.

In channels-last order the k x C inputs that one output position reads from kernel row p lie side by side
in memory, so for each kernel row the sum over (q, c) is one matmul, over a few images at a time to keep
its operands small:

    Y[b, y, x, :]              = bias + sum_p X[b, s*y + p, s*x : s*x + k, :] @ W[:, p]^T   [k*C] @ [k*C, O]
    dX[b, s*y + p, s*x + q, :] += (G[b, y, x, :] @ W[:, p])[q]                              [O] @ [O, k*C]
"""

import math

import torch
from torch.utils.flop_counter import register_flop_formula

_IMAGES_PER_MATMUL = 32  # each matmul's operands ~10 MB in float32 for the PrimaryCaps layer
_AVX2_CPU = torch.backends.cpu.get_cpu_capability() == "AVX2"  # the best instruction set ATen uses


def runs_as_matmuls(dtype: torch.dtype) -> bool:
    """Whether the PrimaryCaps layer takes these forms: in float32 on AVX2 CPUs, where they were measured
    faster; elsewhere oneDNN's kernels ran near the matmul rate (bf16 with AVX-512) or were not measured."""
    return dtype == torch.float32 and _AVX2_CPU


def _output_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


@torch.library.custom_op("capsnet::conv_as_matmuls", mutates_args=())
def conv_as_matmuls(
    inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int
) -> torch.Tensor:
    """``conv2d(inputs, weight, bias, stride)``: [B, C, H, W], [O, C, k, k], [O] -> [B, O, h, w]
    (channels-last)."""
    batch, channels, height, width = inputs.shape
    out_channels, kernel = len(weight), weight.shape[-1]
    rows, cols = _output_size(height, kernel, stride), _output_size(width, kernel, stride)
    pixels = inputs.permute(0, 2, 3, 1).contiguous()  # [B, H, W, C]: a view for channels-last inputs
    taps = weight.permute(0, 2, 3, 1)  # [O, p, q, C]
    outputs = inputs.new_empty(batch * rows * cols, out_channels)
    for first in range(0, batch, _IMAGES_PER_MATMUL):
        images = pixels[first : first + _IMAGES_PER_MATMUL]
        positions = outputs[first * rows * cols : (first + len(images)) * rows * cols]  # [b*h*w, O]
        for p in range(kernel):
            # [b, h, w, k*C]: row s*y + p, columns s*x to s*x + k - 1 (overlapping windows: copied)
            window_rows = images[:, p:].as_strided(
                (len(images), rows, cols, kernel * channels),
                (height * width * channels, stride * width * channels, stride * channels, 1),
            )
            window_rows = window_rows.reshape(-1, kernel * channels)
            row_taps = taps[:, p].reshape(out_channels, -1)  # [O, k*C]
            if p == 0:
                torch.addmm(bias, window_rows, row_taps.T, out=positions)
            else:
                positions.addmm_(window_rows, row_taps.T)
    return outputs.view(batch, rows, cols, out_channels).permute(0, 3, 1, 2)


@conv_as_matmuls.register_fake
def _(inputs, weight, bias, stride):
    kernel = weight.shape[-1]
    rows, cols = (_output_size(size, kernel, stride) for size in inputs.shape[2:])
    return inputs.new_empty(len(inputs), rows, cols, len(weight)).permute(0, 3, 1, 2)


@torch.library.custom_op("capsnet::conv_input_gradient_as_matmuls", mutates_args=())
def conv_input_gradient_as_matmuls(
    grad_output: torch.Tensor, weight: torch.Tensor, stride: int, height: int, width: int
) -> torch.Tensor:
    """dL/dX of ``conv2d(X, weight, stride)`` for X of height x width: [B, O, h, w] -> [B, C, H, W]
    (channels-last). The windows' overlaps are strided adds, which torch.compile's functional form would
    turn into copies of the whole gradient: hence an opaque op."""
    batch, out_channels, rows, cols = grad_output.shape
    kernel, channels = weight.shape[-1], weight.shape[1]
    grad_inputs = grad_output.new_zeros(batch, height, width, channels)  # [B, H, W, C]
    per_position = grad_output.permute(0, 2, 3, 1)  # [B, h, w, O]
    taps = weight.permute(0, 2, 3, 1)  # [O, p, q, C]
    for first in range(0, batch, _IMAGES_PER_MATMUL):
        images = slice(first, first + _IMAGES_PER_MATMUL)
        grads = per_position[images].reshape(-1, out_channels)  # [b*h*w, O]
        for p in range(kernel):
            # [b*h*w, O] @ [O, k*C] -> [b, h, w, q, C]: what each position sends back to row s*y + p
            sent = (grads @ taps[:, p].reshape(out_channels, -1)).view(-1, rows, cols, kernel, channels)
            window_rows = grad_inputs[images, p : p + stride * (rows - 1) + 1 : stride]  # [b, h, W, C]
            for q in range(kernel):
                window_rows[:, :, q : q + stride * (cols - 1) + 1 : stride] += sent[:, :, :, q]
    return grad_inputs.permute(0, 3, 1, 2)


@conv_input_gradient_as_matmuls.register_fake
def _(grad_output, weight, stride, height, width):
    return grad_output.new_empty(len(grad_output), height, width, weight.shape[1]).permute(0, 3, 1, 2)


# FLOPs: 2 x output positions x O x C*k*k, the matmuls'.
@register_flop_formula(torch.ops.capsnet.conv_as_matmuls)
def _forward_flops(inputs_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(out_shape) * math.prod(weight_shape[1:])


@register_flop_formula(torch.ops.capsnet.conv_input_gradient_as_matmuls)
def _input_gradient_flops(grad_output_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(grad_output_shape) * math.prod(weight_shape[1:])
