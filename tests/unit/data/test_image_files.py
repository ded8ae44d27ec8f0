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


def _centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    mass = pixels.sum()
    return (pixels.sum(1) * np.arange(28)).sum() / mass, (pixels.sum(0) * np.arange(28)).sum() / mass


def test_a_digit_of_another_size_is_centred_as_mnists_were(tmp_path):
    """MNIST's recipe: the ink's bounding box scaled (aspect kept) into 20x20, the centre of mass in the
    middle of 28x28; an off-centre stroke in a corner of a large drawing lands in the middle."""
    image = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(image).line((30, 20, 60, 120), fill=0, width=12)  # top left, dark on light
    image.save(tmp_path / "corner.png")
    centred, notes = load_image(tmp_path / "corner.png", (1, 28, 28))
    assert notes == [
        "inverted (dark digit on a light background)",
        "centred as MNIST's digits (ink scaled into 20x20)",
    ]
    pixels = centred[0].numpy()
    rows, columns = np.nonzero(pixels > 0.1)
    assert rows.max() - rows.min() + 1 in (20, 21) and columns.max() - columns.min() + 1 < 12  # tall stroke
    assert _centre_of_mass(pixels) == pytest.approx((13.5, 13.5), abs=0.5)
    whole, notes = load_image(tmp_path / "corner.png", (1, 28, 28), center="false")
    assert notes[0] == "resized from 300x200 to 28x28"  # the whole picture shrunk: the stroke stays top left
    assert _centre_of_mass(whole[0].numpy())[1] < 8


def test_an_image_of_the_models_size_is_taken_as_it_is_unless_centring_is_asked(tmp_path):
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[2:10, 3:6] = 200  # off centre
    Image.fromarray(pixels).save(tmp_path / "mnist_like.png")
    image, notes = load_image(tmp_path / "mnist_like.png", (1, 28, 28))
    assert notes == [] and torch.equal(image[0], torch.from_numpy(pixels).float() / 255)
    centred, notes = load_image(tmp_path / "mnist_like.png", (1, 28, 28), center="true")
    assert _centre_of_mass(centred[0].numpy()) == pytest.approx((13.5, 13.5), abs=0.5)


def test_centring_refuses_a_blank_image(tmp_path):
    Image.new("L", (100, 100), 255).save(tmp_path / "paper.png")
    with pytest.raises(InputError, match=r"paper\.png: no digit in it \(the image is blank\)"):
        load_image(tmp_path / "paper.png", (1, 28, 28))
