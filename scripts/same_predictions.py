"""Does a faster form of the network change what a trained network says? Two forms of one checkpoint
on every test image, under bf16 autocast as in training:

    python scripts/same_predictions.py CHECKPOINT --compare routing|primary_caps [--batch-size N] [overrides]

- ``routing``: routing in float32 against ``routing.precision=bf16`` (its large products in bf16);
- ``primary_caps``: the PrimaryCaps convolution as oneDNN's direct bf16 convolution against its form
  through the Fourier transform in bf16 (``capsnet.nn.conv_fourier``; on any CPU).

The test images come from the project's data config (``conf/train.yaml``'s ``data``, MNIST by default,
checked by its MD5s; Hydra overrides such as ``data.data_dir=DIR`` after the flags). Prints, for each
form, the test error; then how many predictions agree, and the largest and mean difference of the
capsule lengths. The rule for a faster form (docs/speed.md): the predictions of a trained model agree
on at least 99.9% of the test images.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from capsnet.errors import ConfigError, DataError, NonFiniteError  # noqa: E402
from capsnet.models.loading import load_classifier  # noqa: E402
from capsnet.nn import conv_fourier  # noqa: E402


@contextlib.contextmanager
def routing_in(model, precision: str):
    routing = model.net.digits.routing
    if not hasattr(routing, "precision"):
        sys.exit(f"--compare routing: this checkpoint's routing ({type(routing).__name__}) has no precision")
    before, routing.precision = routing.precision, precision
    try:
        yield
    finally:
        routing.precision = before


FORMS = {  # --compare: (name, the context a form runs in) for the reference and the faster form
    "routing": (
        ("float32 routing", lambda m: routing_in(m, "float32")),
        ("bf16 routing", lambda m: routing_in(m, "bf16")),
    ),
    "primary_caps": (
        ("PrimaryCaps direct", lambda m: conv_fourier.fourier_form_for(torch.float32)),
        ("PrimaryCaps Fourier", lambda m: conv_fourier.fourier_form_for(torch.float32, torch.bfloat16)),
    ),
}


def test_set(overrides: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images [N, 1, H, W] in [0, 1] and labels [N] of the data config, as testing sees them."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    batches = [datamodule.on_after_batch_transfer(batch, 0) for batch in datamodule.test_dataloader()]
    return torch.cat([images for images, _ in batches]), torch.cat([labels for _, labels in batches])


@torch.inference_mode()
def capsule_lengths(model, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The lengths [N, classes] of every image, under bf16 autocast."""
    lengths = []
    for batch in images.split(batch_size):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lengths.append(model(batch).lengths.float())
    return torch.cat(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--compare", choices=sorted(FORMS), required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the data, e.g. data.data_dir=DIR")
    args = parser.parse_intermixed_args()
    try:  # not a checkpoint of this project, its weights not finite, or the test files missing: one line
        model = load_classifier(args.checkpoint).eval()
        images, labels = test_set(args.overrides)
    except (ConfigError, DataError, NonFiniteError) as error:
        sys.exit(f"Invalid input: {error}")
    results = []
    for name, form in FORMS[args.compare]:
        with form(model):
            results.append((name, capsule_lengths(model, images, args.batch_size)))
    for name, lengths in results:
        wrong = int((lengths.argmax(1) != labels).sum())
        print(f"{name:20} test error {100 * wrong / len(labels):.2f}% ({wrong} of {len(labels):,})")
    (_, reference), (_, faster) = results
    same = int((reference.argmax(1) == faster.argmax(1)).sum())
    difference = (reference - faster).abs()
    print(f"same prediction: {same:,} of {len(labels):,} ({100 * same / len(labels):.2f}%)")
    print(f"capsule lengths: largest difference {difference.max():.2e}, mean {difference.mean():.2e}")


if __name__ == "__main__":
    main()
