"""The PrimaryCaps layer alone in each of its CPU forms: time and error, to see where each form pays.

    python scripts/benchmark_primary_caps.py [--batch-sizes 16 32 64 128] [--precisions 32 bf16] [--eager]

The layer of the paper's network (256 -> 256 channels, 9x9, stride 2, on 20x20 channels-last inputs:
ReLU'd normal values, weights of variance 1 / fan-in), forward + backward, compiled unless --eager,
the median of the timed calls after warm-up, with the fast recipes' memory settings (huge pages, heap
reuse); in oneDNN's kernels and through the Fourier transform
(``capsnet.nn.conv_fourier``), whatever this CPU would pick. Error: relative norm of the output and the
two gradients against the float64 convolution of the float32 operands. One row per form, batch and
precision.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # huge pages, as the entry points set before torch loads
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from capsnet.ops.process import set_mmap_threshold, skip_triton_on_cpu

skip_triton_on_cpu(True)
# Heap reuse, as experiment=fast_cpu and paper_short: each call reuses the last's memory.
set_mmap_threshold(1073741824)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from capsnet.nn import conv_fourier  # noqa: E402
from capsnet.nn.conv import FastWeightGradConv2d  # noqa: E402

FORMS = {"onednn": (), "fourier": (torch.float32, torch.bfloat16)}  # the products' dtypes that take it


def measure(form: str, batch: int, precision: str, args) -> dict:
    torch.manual_seed(0)
    layer = FastWeightGradConv2d(256, 256, 9, stride=2).to(memory_format=torch.channels_last)
    with torch.no_grad():
        layer.weight.normal_(0, (256 * 81) ** -0.5)
    inputs = torch.randn(batch, 256, 20, 20).relu().to(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(batch, 256, 6, 6)

    def forward(x):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return layer(x)

    torch._dynamo.reset()  # each row compiles afresh
    forward = forward if args.eager else torch.compile(forward)
    with conv_fourier.fourier_form_for(*FORMS[form]):
        times = []
        for _ in range(args.warmup + args.calls):
            start = time.perf_counter()
            output = forward(inputs)
            results = output, *torch.autograd.grad(output, (inputs, layer.weight), grad.to(output.dtype))
            times.append(time.perf_counter() - start)
    operands = [t.detach().double().requires_grad_() for t in (inputs, layer.weight, layer.bias)]
    exact = F.conv2d(*operands, stride=2)
    exact = (exact, *torch.autograd.grad(exact, operands[:2], grad.double()))
    errors = [((a.double() - b).norm() / b.norm()).item() for a, b in zip(results, exact, strict=True)]
    return {
        "form": form,
        "batch": batch,
        "precision": precision,
        "ms": round(1000 * statistics.median(times[args.warmup :]), 1),
        "error_output": errors[0],
        "error_input_grad": errors[1],
        "error_weight_grad": errors[2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--precisions", nargs="+", choices=["32", "bf16"], default=["32", "bf16"])
    parser.add_argument("--eager", action="store_true", help="not compiled")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calls", type=int, default=7)
    args = parser.parse_args()
    smallest = conv_fourier._FOURIER_MIN_BATCH
    dtypes = {"32": torch.float32, "bf16": torch.bfloat16}
    picked = [p for p in args.precisions if conv_fourier.runs_by_fourier(dtypes[p], smallest)]
    print(f"this CPU takes the Fourier form (from {smallest} images) in: {', '.join(picked) or 'none'}")
    header = ("form", "batch", "precision", "ms", "error: output", "input grad", "weight grad")
    print("{:8} {:>5} {:>9} {:>8} {:>14} {:>11} {:>12}".format(*header))
    for batch in args.batch_sizes:
        for precision in args.precisions:
            for form in FORMS:
                row = measure(form, batch, precision, args)
                print(
                    f"{form:8} {batch:5d} {precision:>9} {row['ms']:8.1f} {row['error_output']:14.2e} "
                    f"{row['error_input_grad']:11.2e} {row['error_weight_grad']:12.2e}"
                )


if __name__ == "__main__":
    main()
