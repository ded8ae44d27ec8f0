"""Image files read to look like the training data."""

import os

import numpy as np
import pytest
import torch
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


def test_sixteen_bit_and_float_images_are_scaled_by_their_range(tmp_path):
    ramp = np.linspace(0, 1, 28 * 28, dtype=np.float64).reshape(28, 28)
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "scan16.png")
    Image.fromarray(ramp.astype(np.float32), "F").save(tmp_path / "scan.tif")
    for name in ("scan16.png", "scan.tif"):
        image, _ = load_image(tmp_path / name, (1, 28, 28), invert="false")
        assert torch.allclose(image[0].double(), torch.from_numpy(ramp), atol=1e-4), name


def test_float_images_outside_zero_one_are_refused(tmp_path):
    Image.fromarray(np.full((28, 28), 3.0, dtype=np.float32), "F").save(tmp_path / "hdr.tif")
    with pytest.raises(InputError, match=r"hdr\.tif: floating-point pixels outside \[0, 1\]"):
        load_image(tmp_path / "hdr.tif", (1, 28, 28))


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from capsnet.data import image_files

    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(image_files, "MAX_PIXELS", 300 * 200 - 1)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(InputError, match=r"big\.png: 300x200 pixels is more than the 59,999 this reads"):
        load_image(tmp_path / "big.png", (1, 28, 28))
    assert not decoded


def test_a_folder_skips_what_is_not_a_regular_file(tmp_path):
    from capsnet.data.image_files import input_files

    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")  # reading it would block forever
    assert input_files(str(tmp_path)) == ([tmp_path / "a.png"], [tmp_path / "pipe.png"])
    with pytest.raises(InputError, match="not a regular file"):
        input_files(str(tmp_path / "pipe.png"))
