"""Does routing in bfloat16 change what a trained network says? ``routing.precision=bf16`` against the
float32 routing, on every MNIST test image, with the rest of the network under bf16 autocast as in
training.

    python scripts/routing_precision.py <checkpoint> [--data-dir DIR] [--batch-size 500]

(MNIST is read from --data-dir, by default $CAPSNET_DATA_DIR or data/, checked by its MD5s.)

Prints, for the float32 routing and the bf16 one: the test error; then how many predictions agree, and
the largest and mean difference of the capsule lengths. The rule for using it (docs/speed.md): the
predictions of a trained model agree on at least 99.9% of the test images.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

from omegaconf import OmegaConf  # noqa: E402

from capsnet.data.files import DatasetFiles, load_split  # noqa: E402
from capsnet.models.loading import load_classifier  # noqa: E402


@torch.inference_mode()
def capsule_lengths(model, images: torch.Tensor, precision: str, batch_size: int) -> torch.Tensor:
    """The lengths [N, 10] of every image, bf16 autocast, routing in ``precision``."""
    model.net.digits.routing.precision = precision
    lengths = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].float() / 255
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lengths.append(model(batch).lengths.float())
    return torch.cat(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    default_data = os.environ.get("CAPSNET_DATA_DIR", str(ROOT / "data"))
    parser.add_argument("--data-dir", default=default_data, help="MNIST's folder (as data.data_dir)")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    model = load_classifier(args.checkpoint).eval()
    if not hasattr(model.net.digits.routing, "precision"):
        sys.exit(
            f"{args.checkpoint}: its routing ({type(model.net.digits.routing).__name__}) has no precision"
        )
    mnist = OmegaConf.load(ROOT / "conf" / "data" / "mnist.yaml")  # its file names and MD5s
    spec = DatasetFiles(Path(args.data_dir), mnist.dataset, OmegaConf.to_container(mnist.files))
    images, labels = load_split(spec, "test")
    images = torch.from_numpy(images).unsqueeze(1)
    labels = torch.from_numpy(labels.astype("int64"))
    reference = capsule_lengths(model, images, "float32", args.batch_size)
    low = capsule_lengths(model, images, "bf16", args.batch_size)
    for name, lengths in (("float32 routing", reference), ("bf16 routing", low)):
        wrong = int((lengths.argmax(1) != labels).sum())
        print(f"{name:16} test error {100 * wrong / len(labels):.2f}% ({wrong} of {len(labels):,})")
    same = int((reference.argmax(1) == low.argmax(1)).sum())
    difference = (reference - low).abs()
    print(f"same prediction: {same:,} of {len(labels):,} ({100 * same / len(labels):.2f}%)")
    print(f"capsule lengths: largest difference {difference.max():.2e}, mean {difference.mean():.2e}")


if __name__ == "__main__":
    main()
