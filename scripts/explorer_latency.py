"""How long the capsule explorer's interactions take on the server: its page's handlers, timed.

    python scripts/explorer_latency.py <checkpoint> [--repeats 20]

Prints the median and the largest time of each: a new image (a test-like image; a 280x280 drawing, read
and centred), a slider move (decode and picture), each routing view. The browser's round trip adds
Gradio's own (docs/explorer.md).
"""

import argparse
import statistics
import time

import torch
from PIL import Image, ImageDraw

from capsnet.explore.inspection import CapsuleInspector
from capsnet.explore.page import PREDICTED, VIEWS, ExplorerPage
from capsnet.models.loading import load_classifier


def timed(action, repeats: int) -> str:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    median, largest = 1000 * statistics.median(seconds), 1000 * max(seconds)
    return f"median {median:6.1f} ms, max {largest:6.1f} ms ({repeats} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--repeats", type=int, default=20, help="runs of each (slider moves: 10x)")
    args = parser.parse_args()
    inspector = CapsuleInspector(load_classifier(args.checkpoint), args.checkpoint)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, *inspector.image_shape), dtype=torch.uint8, generator=generator)
    page = ExplorerPage(inspector, images, torch.zeros(4, dtype=torch.long))
    drawing = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(drawing).line((120, 50, 150, 230), fill=(0, 0, 0, 255), width=20)
    seen = page.from_test_set(1)[0]
    offsets = [0.1] * inspector.pose_dim
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"a new test image:   {timed(lambda: page.from_test_set(1), args.repeats)}")
    print(f"a new drawing:      {timed(lambda: page.from_drawing({'composite': drawing}), args.repeats)}")
    print(f"a slider move:      {timed(lambda: page.move(seen, PREDICTED, *offsets), 10 * args.repeats)}")
    for view in VIEWS:
        took = timed(lambda view=view: page.routing(seen, "3", view), args.repeats)
        print(f"routing view {view[:28]!r:30} {took}")


if __name__ == "__main__":
    main()
