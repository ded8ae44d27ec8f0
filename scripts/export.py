"""A trained CapsNet as files other programs run: torch.export (.pt2) and ONNX, each checked against the
checkpoint's own network on real test images.

    python scripts/export.py <checkpoint.ckpt> [--out DIR] [--formats pt2 onnx] [--images IDX_FILE]

The exported function is the network at inference: images [batch, 1, 28, 28] in [0, 1] (any batch size)
-> (capsule lengths [batch, 10], reconstructions of the longest capsule [batch, 1, 28, 28]). The
checkpoint is loaded as weights only, like everywhere in this project. ONNX needs the ``export`` extra
(``pip install -e '.[export]'``: onnx, onnxscript, onnxruntime).

Each file is loaded back (``torch.export.load``; an onnxruntime session) and run on the first
``--check-images`` images of ``--images`` (an IDX file; default: MNIST's test images under ``data/``):
printed are the largest difference of a capsule length from the checkpoint's network, the share of
images whose predicted class agrees, the file's size, and its img/s beside the eager network's on this
machine. A difference above ``TOLERANCE`` fails the export (exit 1).
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from capsnet.data.idx import read_idx  # noqa: E402
from capsnet.errors import ConfigError  # noqa: E402
from capsnet.models.capsnet import CapsNetModule  # noqa: E402
from capsnet.models.loading import load_classifier  # noqa: E402

TOLERANCE = 1e-4  # of a capsule length (in [0, 1)), float32 against float32
DEFAULT_IMAGES = Path(os.environ.get("CAPSNET_DATA_DIR", ROOT / "data")) / "MNIST/raw/t10k-images-idx3-ubyte"
MAX_BATCH = 65536


class InferenceCapsNet(nn.Module):
    """The CapsNet at inference: images -> (capsule lengths, reconstructions of the longest capsule)."""

    def __init__(self, module: CapsNetModule):
        super().__init__()
        self.net = module.net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.net(images)
        return output.lengths, output.reconstructions


def load_images(path: Path, count: int) -> torch.Tensor:
    """The first ``count`` images of an IDX file as float32 [N, 1, H, W] in [0, 1]."""
    images = read_idx(path)[:count]
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float().div_(255.0)


def export_pt2(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(model, (example,), dynamic_shapes={"images": {0: batch}})
    torch.export.save(program, path)


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        dynamic_shapes={"images": {0: batch}},
        input_names=["images"],
        output_names=["lengths", "reconstructions"],
        external_data=False,
        verbose=False,
    )


def runner(fmt: str, path: Path):
    """A function images -> capsule lengths (a torch tensor), running the exported file."""
    if fmt == "pt2":
        program = torch.export.load(path).module()
        return lambda images: program(images)[0]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: torch.from_numpy(session.run(["lengths"], {"images": images.numpy()})[0])


def images_per_second(run, images: torch.Tensor, batch_size: int, repeats: int = 3) -> float:
    batch = images[:batch_size]
    run(batch)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    return repeats * len(batch) / (time.perf_counter() - start)


def check(run, eager_lengths: torch.Tensor, images: torch.Tensor, batch_size: int) -> dict:
    lengths = torch.cat([run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    return {
        "max_length_difference": float((lengths - eager_lengths).abs().max()),
        "same_class": float((lengths.argmax(1) == eager_lengths.argmax(1)).float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt_path", type=Path, help="a checkpoint of src/train.py (a CapsNet)")
    parser.add_argument(
        "--out", type=Path, help="folder for the files (default: <checkpoint name>_export beside it)"
    )
    parser.add_argument("--formats", nargs="+", choices=["pt2", "onnx"], default=["pt2", "onnx"])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="an IDX file of test images")
    parser.add_argument("--check-images", type=int, default=1000, help="images compared (default 1000)")
    parser.add_argument("--batch-size", type=int, default=256, help="images a forward pass when checking")
    args = parser.parse_args(argv)

    try:
        module = load_classifier(args.ckpt_path)
    except ConfigError as error:  # not a checkpoint of this project, or not weights only: one line
        sys.exit(f"Invalid input: {error}")
    if not isinstance(module, CapsNetModule):
        sys.exit(f"{args.ckpt_path}: a checkpoint of {type(module).__name__}; export takes a CapsNet's")
    if not args.images.is_file():
        sys.exit(
            f"--images {args.images}: no such file (an IDX file of test images, e.g. MNIST's t10k-images)"
        )
    images = load_images(args.images, args.check_images)
    shape = list(module.hparams.net["image_shape"])
    if list(images.shape[1:]) != shape:
        sys.exit(f"--images {args.images}: images of {list(images.shape[1:])}; the network takes {shape}")
    model = InferenceCapsNet(module).eval()
    out = args.out or args.ckpt_path.with_name(f"{args.ckpt_path.stem}_export")
    out.mkdir(parents=True, exist_ok=True)

    with torch.no_grad():
        eager = lambda batch: model(batch)[0]  # noqa: E731
        eager_lengths = torch.cat(
            [eager(images[i : i + args.batch_size]) for i in range(0, len(images), args.batch_size)]
        )
        print(
            f"eager: {images_per_second(eager, images, args.batch_size):.0f} img/s at batch {args.batch_size}"
        )
        failed = False
        for fmt in args.formats:
            path = out / f"capsnet.{fmt}"
            (export_pt2 if fmt == "pt2" else export_onnx)(model, images[:8], path)
            run = runner(fmt, path)
            result = check(run, eager_lengths, images, args.batch_size)
            speed = images_per_second(run, images, args.batch_size)
            ok = result["max_length_difference"] <= TOLERANCE
            failed |= not ok
            print(
                f"{path}: {path.stat().st_size / 2**20:.1f} MB; {len(images)} images: capsule lengths within "
                f"{result['max_length_difference']:.1e} of the checkpoint's network "
                f"({'ok' if ok else 'FAILED'}: tolerance {TOLERANCE:g}), the same class for "
                f"{result['same_class']:.2%}; {speed:.0f} img/s"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
