"""The explorer page's handlers, without a browser: what each input gives, and bad inputs answered by a
message that changes nothing else."""

import re

import gradio as gr
import pytest
import torch
from PIL import Image, ImageDraw

from capsnet.data.image_files import load_image
from capsnet.explore.inspection import CapsuleInspector
from capsnet.explore.page import PER_TYPE, PREDICTED, SUMMED, WEIGHTED, ExplorerPage
from capsnet.explore.pictures import lengths_html

DIMS = 16
# The analysis outputs: state, lengths, input, reconstruction, capsule, 16 sliders, moved, timing, view,
# routing, message.
STATE, LENGTHS, INPUT, RECONSTRUCTION, CAPSULE = range(5)
MOVED, TIMING, VIEW, ROUTING, MESSAGE = range(5 + DIMS, 10 + DIMS)


@pytest.fixture(scope="module")
def page():
    from capsnet.run.tasks import build_model
    from tests.conftest import SMALL_CAPSNET
    from tests.helpers import compose_config

    torch.manual_seed(0)
    inspector = CapsuleInspector(build_model(compose_config("train", SMALL_CAPSNET)))
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    return ExplorerPage(inspector, images, torch.arange(5))


def _drawing(blank: bool = False) -> dict:
    """What Gradio's Sketchpad hands over: a transparent canvas with black ink."""
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    if not blank:
        ImageDraw.Draw(canvas).line((120, 50, 150, 230), fill=(0, 0, 0, 255), width=20)
    return {"background": None, "layers": [canvas], "composite": canvas}


def _refused_with(outputs: list, pattern: str) -> None:
    assert len(outputs) == MESSAGE + 1
    assert all(o == gr.skip() for o in outputs[:MESSAGE])  # nothing else changes
    assert re.search(pattern, outputs[MESSAGE]), outputs[MESSAGE]


def test_a_drawing_is_read_as_predict_reads_an_image(page, tmp_path):
    drawing = _drawing()
    outputs = page.from_drawing(drawing)
    assert len(outputs) == MESSAGE + 1
    seen = outputs[STATE]
    drawing["composite"].save(tmp_path / "drawn.png")
    image, _ = load_image(tmp_path / "drawn.png", (1, 28, 28))  # src/predict.py's reader
    assert torch.equal(seen.image, image)
    assert outputs[LENGTHS] == lengths_html(seen.lengths, seen.prediction)
    assert outputs[LENGTHS].count('class="capsule-length') == 10
    assert outputs[CAPSULE] == PREDICTED and outputs[VIEW] == SUMMED
    assert outputs[5 : 5 + DIMS] == [0.0] * DIMS  # the sliders start at the capsule's own pose
    assert outputs[INPUT].size == outputs[RECONSTRUCTION].size == (168, 168)
    assert "centred as MNIST" in outputs[MESSAGE]


def test_bad_inputs_get_a_message_and_change_nothing(page, tmp_path):
    _refused_with(page.from_drawing(_drawing(blank=True)), "the canvas: no digit in it .*draw a digit first")
    _refused_with(page.from_drawing(None), "Draw a digit")
    (tmp_path / "notes.png").write_text("not an image")
    _refused_with(
        page.from_file(str(tmp_path / "notes.png")), r"^<p[^>]*>notes\.png: not an image Pillow can read"
    )
    _refused_with(page.from_file(None), "Upload an image file")
    for index in (-1, 5, 2.5, None):
        _refused_with(page.from_test_set(index), "A test image is a whole number from 0 to 4")
    offline = ExplorerPage(page.inspector, data_problem="data/MNIST/raw/t10k-images-idx3-ubyte is missing")
    _refused_with(
        offline.from_test_set(0), "No test images: data/MNIST/raw/t10k-images-idx3-ubyte is missing"
    )
    assert offline.random_index() is None


def test_an_uploaded_file_and_a_test_image(page, tmp_path):
    Image.new("L", (28, 28), 0).save(tmp_path / "dark.png")
    assert page.from_file(str(tmp_path / "dark.png"))[MESSAGE].endswith("dark.png: taken as it is</p>")
    outputs = page.from_test_set(3)
    assert torch.equal(outputs[STATE].image, page.test_images[3].float() / 255)
    assert "Test image 3 (label 3)" in outputs[MESSAGE]
    assert 0 <= page.random_index() < 5


def test_sliders_move_the_chosen_capsule(page):
    seen = page.from_test_set(1)[STATE]
    still, timing = page.move(seen, PREDICTED, *[0.0] * DIMS)
    assert re.fullmatch(r"decoded in \d+\.\d ms", timing)
    moved, _ = page.move(seen, PREDICTED, *[0.0] * 3, 0.25, *[0.0] * (DIMS - 4))
    assert still.tobytes() != moved.tobytes()
    other = str((seen.prediction + 1) % 10)  # the same offsets reach another capsule's decoder weights
    far = [5.0] * DIMS  # an untrained decoder barely answers the slider's small moves
    assert page.move(seen, other, *far)[0].tobytes() != page.move(seen, PREDICTED, *far)[0].tobytes()
    assert page.move(None, PREDICTED, *[0.0] * DIMS)[0] == gr.skip()


def test_the_routing_views_differ(page):
    seen = page.from_test_set(2)[STATE]
    pictures = {view: page.routing(seen, PREDICTED, view) for view in (SUMMED, PER_TYPE, WEIGHTED)}
    assert pictures[SUMMED].size != pictures[PER_TYPE].size  # 3 panels of 6x6 cells vs 3 of 4 small maps
    assert pictures[SUMMED].tobytes() != pictures[WEIGHTED].tobytes()
