"""bf16 matmuls and convolutions computed in float32 (``capsnet.nn.bf16_in_float32``), on any CPU: the
compiled graphs hold no bf16 product, and their results are bf16 autocast's, as close to float32's."""

import pytest
import torch
import torch._inductor.config
import torch.nn.functional as F

from capsnet.nn import bf16_in_float32
from capsnet.nn.bf16_in_float32 import MATMULS, BF16InFloat32
from capsnet.nn.conv import FastWeightGradConv2d


class RecordingPass(BF16InFloat32):
    """The pass, recording the output dtypes of the products it leaves in each graph."""

    def __init__(self):
        self.products = []

    def uuid(self):
        return None  # no cached graphs: each compilation runs the pass

    def __call__(self, graph: torch.fx.Graph) -> None:
        super().__call__(graph)
        for node in graph.nodes:
            if node.target in MATMULS:
                values = node.meta["val"] if isinstance(node.meta["val"], tuple) else (node.meta["val"],)
                self.products += [(node.target, v.dtype) for v in values if v is not None]


@pytest.fixture
def recording():
    """The pass in place for this test's compilations only."""
    recording = RecordingPass()
    torch._dynamo.reset()
    with torch._inductor.config.patch(bf16_in_float32.settings(recording)):
        yield recording
    torch._dynamo.reset()


class Small(torch.nn.Module):
    """Each kind of product the pass rewrites: a strided convolution (and its backward), addmm, mm, bmm."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 5, stride=2)
        self.linear = torch.nn.Linear(8 * 6 * 6, 32)
        self.pairs = torch.nn.Parameter(torch.randn(4, 8, 16) / 4)

    def forward(self, images):
        features = torch.relu(self.conv(images)).flatten(1)  # [B, 288]
        hidden = self.linear(features).view(-1, 4, 8).transpose(0, 1)  # [4, B, 8]
        return torch.bmm(hidden, self.pairs.to(hidden.dtype))  # [4, B, 16]


def _run(module, images, dtype):
    """Outputs and every gradient of one forward + backward under ``dtype`` autocast (None: float32)."""
    module.zero_grad()
    images = images.clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        outputs = module(images)
    outputs.float().square().sum().backward()
    return [outputs, images.grad, *(p.grad for p in module.parameters())]


def _error(values, reference):
    return max(((v.float() - r).norm() / r.norm()).item() for v, r in zip(values, reference, strict=True))


def test_compiled_graphs_hold_no_bf16_product_and_keep_autocasts_dtypes(recording):
    torch.manual_seed(0)
    module, images = Small(), torch.randn(6, 4, 16, 16)
    eager = _run(module, images, torch.bfloat16)
    compiled = _run(torch.compile(module), images, torch.bfloat16)
    targets = {target for target, _ in recording.products}
    assert {torch.ops.aten.convolution_backward.default, torch.ops.aten.bmm.default} <= targets
    assert {torch.ops.aten.addmm.default, torch.ops.aten.mm.default} <= targets
    assert {dtype for _, dtype in recording.products} == {torch.float32}
    assert [t.dtype for t in compiled] == [t.dtype for t in eager]  # bf16 outputs, float32 gradients


def test_results_are_as_close_to_float32_as_bf16_kernels(recording):
    torch.manual_seed(0)
    module, images = Small(), torch.randn(6, 4, 16, 16)
    reference = _run(module, images, None)
    eager_bf16 = _run(module, images, torch.bfloat16)
    in_float32 = _run(torch.compile(module), images, torch.bfloat16)
    # Each result rounded once from float32 sums, as the bf16 kernels round theirs: as close to float32
    # (the margin: roundings differ where the sums' order does, and the differences travel on).
    assert _error(in_float32, reference) <= 1.5 * _error(eager_bf16, reference)
    assert _error(in_float32, reference) < 0.05


def test_a_result_is_the_float32_product_of_the_bf16_operands_rounded(recording):
    torch.manual_seed(0)
    a, b = torch.randn(64, 96), torch.randn(96, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        product = torch.compile(torch.mm)(a, b)
    expected = (a.bfloat16().float() @ b.bfloat16().float()).bfloat16()
    assert product.dtype == torch.bfloat16
    torch.testing.assert_close(product, expected, rtol=2**-7, atol=1e-5)  # one rounding: at most an ulp


def test_primary_caps_take_the_fourier_form_in_float32_on_avx2(recording, fourier_form):
    """bf16 on an AVX2 CPU: the layer's products are float32 ones, so it takes its float32 form there;
    its output and gradients are the exact ones of the bf16 operands, each rounded once to bf16."""
    fourier_form(torch.float32)  # as on AVX2
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(16, 16, 9, stride=2).to(memory_format=torch.channels_last)
    images = torch.rand(4, 16, 20, 20)
    in_float32 = _run(torch.compile(layer), images, torch.bfloat16)
    assert torch.ops.aten.bmm.default in {target for target, _ in recording.products}  # its products
    assert not {torch.ops.aten.convolution.default} & {target for target, _ in recording.products}
    rounded = [t.detach().bfloat16().double().requires_grad_() for t in (images, layer.weight, layer.bias)]
    expected = F.conv2d(*rounded, stride=2)
    assert in_float32[0].dtype == torch.bfloat16
    torch.testing.assert_close(in_float32[0].double(), expected, rtol=2**-7, atol=1e-3)
    # The backward pass's DFT matrices and spectra in float32 too (bf16 ones: 1.7-2.9x the error).
    exact = torch.autograd.grad(expected, rounded, 2 * in_float32[0].double())  # d(sum out^2)/d out
    for got, want in zip(in_float32[1:], exact, strict=True):
        rounding = (want.bfloat16().double() - want).norm() / want.norm()
        assert (got.double() - want).norm() / want.norm() <= 1.1 * rounding
