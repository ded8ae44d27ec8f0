"""Image files read to look like the training data."""

import pytest
from PIL import Image, ImageDraw

from capsnet.data.image_files import load_image
from capsnet.errors import InputError


def _dark_digit_on_white(path, size=(64, 80)):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line((size[0] // 2, 8, size[0] // 2, size[1] - 8), fill=(20, 20, 90), width=8)
    image.save(path)


def test_load_image_matches_training_data(tmp_path):
    _dark_digit_on_white(tmp_path / "digit.png")
    image, notes = load_image(tmp_path / "digit.png", (1, 28, 28))
    assert image.shape == (1, 28, 28) and image.min() >= 0.0 and image.max() <= 1.0
    assert image[0, 0, 0] < 0.1 and image[0, 14, 14] > 0.5  # light stroke on a dark background
    assert len(notes) == 3
    Image.new("L", (5, 40)).save(tmp_path / "thin.png")
    with pytest.raises(InputError, match="5x40 pixels is too small"):
        load_image(tmp_path / "thin.png", (1, 28, 28))
