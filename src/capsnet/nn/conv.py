"""The CapsNet's two convolutions, each in the form that runs fastest on the CPU (the same function).

``FastWeightGradConv2d`` (PrimaryCaps): its weight gradient is computed as a forward convolution.

For a convolution without padding, of stride s and kernel k, the weight gradient is itself a
convolution: the input with batch and channels swapped, convolved with the output gradient
(batch and channels swapped too) dilated by s:

    dW[o, c, p, q] = sum_{b, y, x} X[b, c, s*y + p, s*x + q] G[b, o, y, x]
                   = conv2d(X^T, G^T, dilation=s)[c, o, p, q]

For the PrimaryCaps layer (256 -> 256 channels, 9x9, stride 2), oneDNN's forward kernel computes
it much faster than its backward-weights kernel on the CPU (figures: docs/speed.md).

Its input gradient, in bfloat16 on CPUs with AMX under torch.compile, is one matmul and a gather-sum
(``conv_input_gradient``), which runs far faster there than oneDNN's strided backward-data kernel
(figures: docs/speed.md).

Its forward and input gradient are otherwise oneDNN's kernels, except where the whole layer goes through
the discrete Fourier transform (``capsnet.nn.conv_fourier``): in float32 on every CPU, in bf16 on CPUs with
AVX-512 BF16 and no AMX, and in bf16 on AVX2 CPUs when a compiled graph computes bf16's products in float32
(``capsnet.nn.bf16_in_float32``). The bias gradient is PyTorch's own. On other devices (cuDNN has fast
backward kernels) the layer is a plain Conv2d.
"""

import torch
import torch.nn.functional as F
from torch import nn

from capsnet.nn.conv_fourier import conv_by_fourier, runs_by_fourier

_AMX_BF16 = torch.cpu.get_capabilities().get("amx_bf16", False)  # bfloat16 matrix tiles
CHUNK_IMAGES = 8  # images per matmul of conv_input_gradient


def input_gradient_by_matmul(dtype: torch.dtype) -> bool:
    """Whether the input gradient takes ``conv_input_gradient``'s form: in bfloat16 with AMX, when
    compiled (inductor fuses its gather-sum; eager, it would materialise every tap's product)."""
    return dtype == torch.bfloat16 and _AMX_BF16 and torch.compiler.is_compiling()


def conv_weight_gradient(
    inputs: torch.Tensor, grad_output: torch.Tensor, stride: int, kernel: int
) -> torch.Tensor:
    """dL/dW of an unpadded ``conv2d(inputs, W, stride)``: [B, C, H, W], [B, O, h, w] -> [O, C, k, k]."""
    height = (grad_output.shape[2] - 1) * stride + kernel  # rows the output positions actually read
    width = (grad_output.shape[3] - 1) * stride + kernel
    # [C, B, H', W'], stored with B fastest (channels-last for this convolution, whose channels are B):
    # one permuting copy, which torch.compile tiles; the transposed view alone became a scalar copy.
    swapped_inputs = inputs[:, :, :height, :width].permute(1, 2, 3, 0).contiguous().permute(0, 3, 1, 2)
    swapped_grads = grad_output.transpose(0, 1)  # [O, B, h, w]: the "kernel"
    return F.conv2d(swapped_inputs, swapped_grads, dilation=stride).transpose(0, 1)


def conv_input_gradient(
    grad_output: torch.Tensor, weight: torch.Tensor, stride: int, size: tuple[int, int]
) -> torch.Tensor:
    """dL/dX of an unpadded ``conv2d(X, W, stride)``, X of spatial ``size``: [B, O, h, w] -> [B, C, H, W].

    Output position (i, j) reads input (s*i + p, s*j + q) through tap (p, q), so

        dX[b, c, y, x] = sum_{s*i + p = y, s*j + q = x} sum_o G[b, o, i, j] W[o, c, p, q]

    Every product once, in matmuls of a few images each, then each input position sums its at most
    ceil(k/s)^2 taps:

        P[b, i, j, p, q, c] = sum_o G[b, o, i, j] W[o, c, p, q]              [B*h*w, O] @ [O, k*k*C]
        dX[b, c, s*m + a, s*n + e] = sum_{t, u} P[b, m - t, n - u, s*t + a, s*u + e, c]
    """
    _, out_channels, rows, cols = grad_output.shape
    kernel, in_channels = weight.shape[-1], weight.shape[1]
    taps = -(-kernel // stride)

    def reads(length: int, outputs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each input position along one axis and each of its taps t: the output position that
        reads it (m - t), the kernel tap (s*t + a), and whether both exist. [length, taps] each."""
        position = torch.arange(length, device=weight.device)[:, None]
        tap = torch.arange(taps, device=weight.device)
        output, kernel_tap = position // stride - tap, position % stride + stride * tap
        exists = (output >= 0) & (output < outputs) & (kernel_tap < kernel)
        return output.clamp(0, outputs - 1), kernel_tap.clamp(max=kernel - 1), exists

    row, row_tap, row_exists = reads(size[0], rows)
    col, col_tap, col_exists = reads(size[1], cols)
    exists = (row_exists[:, None, :, None] & col_exists[None, :, None, :])[..., None]
    weight_matrix = weight.permute(0, 2, 3, 1).reshape(out_channels, -1)  # [O, k*k*C]
    accumulate = torch.promote_types(grad_output.dtype, torch.float32)  # bf16's sums in float32
    chunks = []
    # A few images at a time: their products ([b, h, w, k, k, C], 1.5 MB an image for PrimaryCaps in
    # bf16) stay small beside the step's peak.
    for grads in grad_output.split(CHUNK_IMAGES):
        products = torch.mm(grads.permute(0, 2, 3, 1).reshape(-1, out_channels), weight_matrix)
        products = products.view(len(grads), rows, cols, kernel, kernel, in_channels)
        # [b, H, W, taps, taps, C]: a gather that inductor fuses with the sum, never stored
        gathered = products[
            :,
            row[:, None, :, None],
            col[None, :, None, :],
            row_tap[:, None, :, None],
            col_tap[None, :, None, :],
        ]
        summed = torch.where(exists, gathered, 0).sum(dim=(3, 4), dtype=accumulate)  # [b, H, W, C]
        chunks.append(summed.to(grad_output.dtype))
    return torch.cat(chunks).permute(0, 3, 1, 2)


class _ConvWithFastWeightGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, weight, bias, stride: int):
        ctx.dtypes = (inputs.dtype, weight.dtype, bias.dtype)
        device = inputs.device.type
        if torch.is_autocast_enabled(device):  # compute in the autocast dtype, as F.conv2d would
            dtype = torch.get_autocast_dtype(device)
            inputs, weight, bias = inputs.to(dtype), weight.to(dtype), bias.to(dtype)
        ctx.save_for_backward(inputs, weight)
        ctx.stride = stride
        with torch.autocast(device, enabled=False):
            return F.conv2d(inputs, weight, bias, stride=stride)

    @staticmethod
    def backward(ctx, grad_output):
        inputs, weight = ctx.saved_tensors
        input_dtype, weight_dtype, bias_dtype = ctx.dtypes
        grad_output = grad_output.to(inputs.dtype)
        grad_inputs = grad_weight = grad_bias = None
        with torch.autocast(inputs.device.type, enabled=False):
            if ctx.needs_input_grad[0] and input_gradient_by_matmul(inputs.dtype):
                size = inputs.shape[-2:]
                grad_inputs = conv_input_gradient(grad_output, weight, ctx.stride, size).to(input_dtype)
            elif ctx.needs_input_grad[0]:
                grad_inputs = torch.ops.aten.convolution_backward(
                    grad_output, inputs, weight, None, [ctx.stride] * 2, [0, 0], [1, 1], False,
                    [0, 0], 1, [True, False, False],
                )[0].to(input_dtype)  # fmt: skip
            if ctx.needs_input_grad[1]:
                kernel = weight.shape[-1]
                # In the weight's own layout (channels-last or not): autograd copies a gradient of
                # another layout again, outside the compiled graph.
                grad_weight = torch.empty_like(weight, dtype=weight_dtype)
                grad_weight.copy_(conv_weight_gradient(inputs, grad_output, ctx.stride, kernel))
            if ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(dim=(0, 2, 3), dtype=torch.float32).to(bias_dtype)
        return grad_inputs, grad_weight, grad_bias, None


class FastWeightGradConv2d(nn.Conv2d):
    """``nn.Conv2d`` (square kernel and stride, no padding, dilation or groups) on the CPU through the
    Fourier transform where ``runs_by_fourier``, else with the fast weight gradient. Same parameters, same
    state dict, same function."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)

    def keeps_only_spectra(self, inputs: torch.Tensor) -> bool:
        """Whether a call on these inputs goes through the Fourier transform, which keeps the inputs'
        spectra for the backward pass, not the inputs."""
        if inputs.device.type != "cpu" or torch.compiler.is_exporting():
            return False
        return runs_by_fourier(_products_dtype(_operand_dtype(inputs)), len(inputs))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.device.type != "cpu" or torch.compiler.is_exporting():  # exported: the portable op
            return super().forward(inputs)
        if not self.keeps_only_spectra(inputs):
            return _ConvWithFastWeightGradient.apply(inputs, self.weight, self.bias, self.stride[0])
        dtype = _operand_dtype(inputs)
        if dtype == torch.float32:
            return conv_by_fourier(inputs, self.weight, self.bias, self.stride[0])
        with torch.autocast("cpu", enabled=False):
            operands = [t.to(dtype) for t in (inputs, self.weight, self.bias)]
            if _products_dtype(dtype) == dtype:  # transforms and products in bf16, sums in float32
                return conv_by_fourier(*operands, self.stride[0])
            # bf16's products in float32 (capsnet.nn.bf16_in_float32): exact products, float32 sums, the
            # result rounded to bf16, as the bf16 convolution would.
            return conv_by_fourier(*(t.float() for t in operands), self.stride[0]).to(dtype)


def _operand_dtype(inputs: torch.Tensor) -> torch.dtype:
    """The dtype a convolution's operands have: autocast's, where it is on."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else inputs.dtype


def _products_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the products of operands of ``dtype`` are computed in: float32 for bf16 where a compiled
    graph takes bf16 matmuls in float32 (``capsnet.nn.bf16_in_float32``), else ``dtype``."""
    if dtype != torch.bfloat16 or not torch.compiler.is_compiling():
        return dtype
    from capsnet.nn import bf16_in_float32  # imports inductor, which is loaded when compiling

    return torch.float32 if bf16_in_float32.installed() else dtype


class PatchMatmulConv2d(nn.Conv2d):
    """``nn.Conv2d`` (square kernel, stride 1, no padding, dilation or groups) computed on the CPU as one
    matmul over the input's patches (im2col), for a layer with few input channels such as Conv1 (1 -> 256,
    9x9): there oneDNN's convolution kernels, forward and weight gradient, are far from the matmul rate,
    while the patches of a one-channel image are small (81 values per output position). Same
    parameters, same state dict, same function; a plain Conv2d on other devices and when exported.

        out[b, :, y, x] = W [O, C*k*k] @ patch[b, :, y, x] + bias     patch: the C x k x k input window
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.device.type != "cpu" or torch.compiler.is_exporting():  # exported: the portable op
            return super().forward(inputs)
        batch, _, height, width = inputs.shape
        kernel = self.kernel_size[0]
        patches = F.unfold(inputs, kernel).transpose(1, 2)  # [B, positions, C*k*k]
        weight = self.weight.reshape(len(self.weight), -1)  # [O, C*k*k]
        out = torch.addmm(self.bias, patches.reshape(-1, patches.shape[-1]), weight.T)  # [B*positions, O]
        # [B*positions, O] is [B, h, w, O]: the output in channels-last order, viewed as NCHW.
        return out.view(batch, height - kernel + 1, width - kernel + 1, -1).permute(0, 3, 1, 2)
