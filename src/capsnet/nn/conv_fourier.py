"""A strided convolution without padding through the discrete Fourier transform: the PrimaryCaps layer
on CPUs, in float32, and in bf16 where the CPU has AVX-512 BF16 and no AMX; it needs a third of the
direct convolution's multiplications. The same function up to rounding (exact in float64; in float32 as
close to it as the direct convolution, in bf16 within 2.5x the direct bf16 convolution's error: tests).

Stride s splits the input and the kernel into s x s phases (p, q): rows s*i + p, columns s*j + q. Each
phase pair is a stride-1 correlation and the layer is their sum (k x k kernel, t = ceil(k / s) taps a
phase, h x w outputs):

    y[b, o, m, n] = sum_{p, q, c} sum_{a, d < t} X_pq[b, c, m + a, n + d] K_pq[o, c, a, d]

On an N_h x N_w grid, N_h = h + t - 1, that correlation never wraps onto an output, so by the correlation
theorem it is, at each frequency (u, v) of the grid's real DFT, one complex matmul over (p, q, c):

    Y(u, v)[b, o] = sum_{p, q, c} X_pq(u, v)[b, c] M_pq(u, v)[c, o],   M = conj(K)    [B, s*s*C] @ [s*s*C, O]

and each complex matmul is three real ones (Gauss):

    k1 = (Xr + Xi) Mr,    k2 = Xr (Mi - Mr),    k3 = Xi (Mr + Mi),    Yr = k1 - k3,    Yi = k1 + k2

A real signal's spectrum is conjugate-symmetric, so of each conjugate pair one frequency is kept (52 of
100 on PrimaryCaps' 10 x 10 grids). A frequency that is its own partner (u in {0, N_h/2}, v in {0, N_w/2})
is real: Xi = Mi = 0 there, and its product is one real matmul, k1 = Xr Mr (4 of the 52). So PrimaryCaps
takes 3 x 48 + 4 = 148 real matmuls of [B, 1024] @ [1024, 256], a fifth of the direct convolution's 36
positions x [B, 20,736] @ [20,736, 256] (a third with the transforms, at batch 128). The transforms are
real matmuls with small DFT matrices: grid -> planes, kernel -> planes, and (k1, k2, k3) -> the h x w
outputs only.
"""

import contextlib
import math

import torch
import torch.nn.functional as F

_CPU = torch.cpu.get_capabilities()
# The products' dtypes the layer takes this form for: float32 on every CPU; bf16 on CPUs with AVX-512's
# bf16 dot products and no AMX tiles (with the tiles, oneDNN's bf16 kernels).
_FOURIER_DTYPES = frozenset(
    {torch.float32} | ({torch.bfloat16} if _CPU.get("avx512_bf16") and not _CPU.get("amx_bf16") else set())
)
# Below this batch the kernel's transforms, whose cost does not shrink with the batch, outweigh the
# multiplications saved.
_FOURIER_MIN_BATCH = 48


def runs_by_fourier(products: torch.dtype, batch: int) -> bool:
    """Whether the PrimaryCaps layer takes this form for products in this dtype and this many images: where
    it was measured faster than oneDNN's kernels (figures: docs/speed.md)."""
    return products in _FOURIER_DTYPES and batch >= _FOURIER_MIN_BATCH


@contextlib.contextmanager
def fourier_form_for(*products: torch.dtype, min_batch: int = 1):
    """Within it the layer takes this form for products in these dtypes only (none: oneDNN's kernels), from
    ``min_batch`` images, on any CPU: how scripts compare the forms."""
    global _FOURIER_DTYPES, _FOURIER_MIN_BATCH
    before = _FOURIER_DTYPES, _FOURIER_MIN_BATCH
    _FOURIER_DTYPES, _FOURIER_MIN_BATCH = frozenset(products), min_batch
    try:
        yield
    finally:
        _FOURIER_DTYPES, _FOURIER_MIN_BATCH = before


def _pad_or_cut(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Zero rows and columns added to (or cut from, when negative) the bottom and right of x."""
    return F.pad(x, (0, cols, 0, rows)) if rows or cols else x


class _Grid:
    """The phase grid of one convolution shape, and its DFT matrices (in float64, so that the float32 ones
    are correctly rounded; ``_dft_matrices`` keeps them)."""

    def __init__(self, height: int, width: int, kernel: int, stride: int):
        self.stride, self.kernel = stride, kernel
        self.out_h, self.out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        self.taps = math.ceil(kernel / stride)
        self.rows, self.cols = self.out_h + self.taps - 1, self.out_w + self.taps - 1  # N_h, N_w
        # The frequencies kept and c_uv, how many of the full spectrum's (u, v) each stands for: 2 for the
        # complex ones, first, 1 for the real ones (their own partners), last.
        frequencies, counts = [], []
        for v in range(self.cols // 2 + 1):
            self_conjugate_column = v == 0 or 2 * v == self.cols  # (u, v) pairs with (-u, v) here
            for u in range(self.rows // 2 + 1 if self_conjugate_column else self.rows):
                frequencies.append((u, v))
                counts.append(1.0 if self_conjugate_column and (u == 0 or 2 * u == self.rows) else 2.0)
        order = sorted(range(len(counts)), key=lambda f: -counts[f])
        self.frequencies, self.complex = len(counts), counts.count(2.0)  # n, n_c
        self._uv = torch.tensor([frequencies[f] for f in order], dtype=torch.float64)
        self._counts = torch.tensor([counts[f] for f in order], dtype=torch.float64)
        n, n_c = self.frequencies, self.complex
        # Each Gauss product's rows of the input and kernel DFT matrices (and its columns of the inverse
        # one, which are its kernel rows): k1 over all n frequencies, k2 and k3 over the n_c complex ones.
        self.products = (
            (slice(0, n), slice(0, n)),
            (slice(n, n + n_c), slice(n, n + n_c)),
            (slice(2 * n, 2 * n + n_c), slice(n + n_c, n + 2 * n_c)),
        )

    def _cos_sin(self, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of 2 pi (u i / N_h + v j / N_w): [frequencies, rows * cols] each, for positions
        i < rows, j < cols; the sines of the real frequencies (angles of whole multiples of pi) exactly 0."""
        i = torch.arange(rows, dtype=torch.float64).repeat_interleave(cols)
        j = torch.arange(cols, dtype=torch.float64).repeat(rows)
        u, v = self._uv[:, :1], self._uv[:, 1:]
        angles = 2 * math.pi * (u * i / self.rows + v * j / self.cols)
        sin = torch.sin(angles)
        sin[self.complex :] = 0
        return torch.cos(angles), sin

    def input_dft(self) -> torch.Tensor:
        """[2n + n_c, N_h * N_w]: of X = sum x e^{-i angle}, Xr + Xi (n frequencies), Xr (n), Xi (n_c)."""
        cos, sin = self._cos_sin(self.rows, self.cols)
        return torch.cat((cos - sin, cos, -sin[: self.complex]))

    def kernel_dft(self) -> torch.Tensor:
        """[n + 2 n_c, t * t]: of M = conj(K) = sum k e^{+i angle}, Mr (n), Mi - Mr (n_c), Mr + Mi (n_c)."""
        cos, sin = self._cos_sin(self.taps, self.taps)
        complex_ = slice(0, self.complex)
        return torch.cat((cos, sin[complex_] - cos[complex_], cos[complex_] + sin[complex_]))

    def inverse_dft(self) -> torch.Tensor:
        """[h * w, n + 2 n_c]: the outputs from (k1, k2, k3) by the real inverse DFT

        y[m, n] = sum_{u, v} c_uv / (N_h N_w) (Yr cos - Yi sin)(angle),   Yr = k1 - k3,   Yi = k1 + k2"""
        cos, sin = self._cos_sin(self.out_h, self.out_w)
        real = (cos * self._counts[:, None]).T / (self.rows * self.cols)  # Yr's coefficient, [h * w, n]
        imag = -(sin * self._counts[:, None]).T / (self.rows * self.cols)  # Yi's (0 where real)
        complex_ = slice(0, self.complex)
        return torch.cat((real + imag, imag[:, complex_], -real[:, complex_]), dim=1)

    def inputs_on_grid(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [N_h * N_w, B * s*s*C]. Rows past s * N_h are never read (cut); rows short of
        it are met only by the kernel's zero taps (padded)."""
        batch, channels, height, width = inputs.shape
        s = self.stride
        x = _pad_or_cut(inputs, s * self.rows - height, s * self.cols - width)
        x = x.permute(0, 2, 3, 1).reshape(batch, self.rows, s, self.cols, s, channels)
        return x.permute(1, 3, 0, 2, 4, 5).reshape(self.rows * self.cols, -1)

    def gradient_from_grid(self, grid: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The transpose of ``inputs_on_grid``: [N_h * N_w, B * s*s*C] -> [B, C, H, W] (channels-last)."""
        batch, channels, height, width = shape
        s = self.stride
        x = grid.view(self.rows, self.cols, batch, s, s, channels).permute(2, 0, 3, 1, 4, 5)
        x = x.reshape(batch, s * self.rows, s * self.cols, channels).permute(0, 3, 1, 2)
        return _pad_or_cut(x, height - s * self.rows, width - s * self.cols)

    def kernel_taps(self, weight: torch.Tensor) -> torch.Tensor:
        """[O, C, k, k] -> [t * t, s*s*C * O], zero taps past k."""
        out_channels, channels = weight.shape[:2]
        s, t, pad = self.stride, self.taps, self.stride * self.taps - self.kernel
        w = F.pad(weight, (0, pad, 0, pad)).reshape(out_channels, channels, t, s, t, s)
        return w.permute(2, 4, 3, 5, 1, 0).reshape(t * t, -1)

    def gradient_from_taps(self, taps: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The transpose of ``kernel_taps``: [t * t, s*s*C * O] -> [O, C, k, k]."""
        out_channels, channels = shape[:2]
        s, t = self.stride, self.taps
        w = taps.view(t, t, s, s, channels, out_channels).permute(5, 4, 0, 2, 1, 3)
        return w.reshape(out_channels, channels, s * t, s * t)[:, :, : self.kernel, : self.kernel]


_MATRICES: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


@torch.compiler.assume_constant_result  # torch.compile: constants of the graph, not recomputed each step
def _dft_matrices(
    height: int, width: int, kernel: int, stride: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A shape's input, kernel and inverse DFT matrices in dtype on device, made once."""
    key = (height, width, kernel, stride, dtype, device)
    if key not in _MATRICES:
        grid = _Grid(height, width, kernel, stride)
        matrices = grid.input_dft(), grid.kernel_dft(), grid.inverse_dft()  # float64
        _MATRICES[key] = tuple(m.to(dtype=dtype, device=device) for m in matrices)
    return _MATRICES[key]


class _ConvByFourier(torch.autograd.Function):
    """Keeps the inputs' Xr and (at the complex frequencies) Xi for the backward pass, and makes each
    kernel plane (the layer's largest tensors: 55 MB each in float32 for PrimaryCaps) when a product
    needs it, in both passes: one plane at a time in memory, never kept."""

    @staticmethod
    def forward(ctx, inputs, weight, bias, stride: int):
        shape = (inputs.shape[2], inputs.shape[3], weight.shape[-1], stride)
        grid = _Grid(*shape)
        input_dft, kernel_dft, inverse_dft = _dft_matrices(*shape, inputs.dtype, inputs.device)
        batch, out_channels, n, n_c = inputs.shape[0], weight.shape[0], grid.frequencies, grid.complex
        on_grid = grid.inputs_on_grid(inputs)
        taps = grid.kernel_taps(weight)

        def kernel_plane(rows: slice) -> torch.Tensor:  # [frequencies, s*s*C, O]
            dft = kernel_dft[rows]
            return (dft @ taps).view(len(dft), -1, out_channels)

        (x1, m1), (_, m2), (_, m3) = grid.products
        # k1 = (Xr + Xi) Mr first, so that the grid can go before Xr and Xi are made.
        k1 = torch.bmm((input_dft[x1] @ on_grid).view(n, batch, -1), kernel_plane(m1))
        x_planes = (input_dft[n:] @ on_grid).view(n + n_c, batch, -1)  # Xr [n], Xi [n_c]
        del on_grid
        k2 = torch.bmm(x_planes[:n_c], kernel_plane(m2))
        k3 = torch.bmm(x_planes[n:], kernel_plane(m3))
        y = inverse_dft @ torch.cat((k1, k2, k3)).view(n + 2 * n_c, -1)  # [h * w, B * O]
        ctx.save_for_backward(x_planes, weight)
        ctx.grid, ctx.input_shape, ctx.dft_matrices = grid, inputs.shape, (input_dft, kernel_dft, inverse_dft)
        return (y.view(grid.out_h, grid.out_w, batch, out_channels) + bias).permute(2, 3, 0, 1)

    @staticmethod
    def backward(ctx, grad_output):
        # Autocast off: in the forward's dtype (torch.compile traces a backward under the forward's
        # autocast state, so bf16 autocast would round a float32 form's DFT matrices and spectra).
        with torch.autocast(grad_output.device.type, enabled=False):
            return _ConvByFourier._backward(ctx, grad_output)

    @staticmethod
    def _backward(ctx, grad_output):
        x_planes, weight = ctx.saved_tensors
        grid, n, n_c = ctx.grid, ctx.grid.frequencies, ctx.grid.complex
        like = dict(dtype=grad_output.dtype, device=grad_output.device)
        input_dft, kernel_dft, inverse_dft = ctx.dft_matrices
        grads = grad_output.permute(2, 3, 0, 1).reshape(grid.out_h * grid.out_w, -1)  # [h * w, B * O]
        grad_products = (inverse_dft.T @ grads).view(n + 2 * n_c, x_planes.shape[1], -1)
        grad_products = grad_products.split((n, n_c, n_c))  # dk1, dk2, dk3
        taps = grid.kernel_taps(weight)
        grad_inputs = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # dX = sum over the products of dk M^T, each taken back to the grid
            grad_grid = torch.zeros(input_dft.shape[-1], x_planes[0].numel(), **like)
            for grad_k, (x_rows, m_rows) in zip(grad_products, grid.products, strict=True):
                m = (kernel_dft[m_rows] @ taps).view(len(grad_k), -1, weight.shape[0])
                grad_grid.addmm_(
                    input_dft[x_rows].T, torch.bmm(grad_k, m.transpose(1, 2)).view(len(grad_k), -1)
                )
            grad_inputs = grid.gradient_from_grid(grad_grid, ctx.input_shape)
        if ctx.needs_input_grad[1]:  # dM = sum over the products of X^T dk, each taken back to the taps
            grad_taps = torch.zeros_like(taps)
            xr, xi = x_planes[:n], x_planes[n:]
            x_sums = torch.cat((xr[:n_c] + xi, xr[n_c:]))  # Xr + Xi; Xr alone where real
            for grad_k, x, (_, m_rows) in zip(
                grad_products, (x_sums, xr[:n_c], xi), grid.products, strict=True
            ):
                grad_taps.addmm_(
                    kernel_dft[m_rows].T, torch.bmm(x.transpose(1, 2), grad_k).view(len(grad_k), -1)
                )
            # In the weight's own layout: autograd would copy another, outside compiled graphs.
            grad_weight = torch.empty_like(weight)
            grad_weight.copy_(grid.gradient_from_taps(grad_taps, weight.shape))
        if ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(dim=(0, 2, 3))
        return grad_inputs, grad_weight, grad_bias, None


def conv_by_fourier(
    inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int
) -> torch.Tensor:
    """``F.conv2d(inputs, weight, bias, stride)``, no padding: [B, C, H, W], [O, C, k, k] -> [B, O, h, w]."""
    return _ConvByFourier.apply(inputs, weight, bias, stride)
