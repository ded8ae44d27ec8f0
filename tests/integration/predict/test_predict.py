"""src/predict.py: image files of any kind classified by a trained checkpoint."""

from PIL import Image, ImageDraw

from tests.helpers import run_in_process


def _dark_digit_on_white(path, size=(64, 80)):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line((size[0] // 2, 8, size[0] // 2, size[1] - 8), fill=(20, 20, 90), width=8)
    image.save(path)


def test_predict_converts_classifies_and_reconstructs(trained_capsnet, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    _dark_digit_on_white(folder / "one.png")
    Image.new("L", (28, 28), 0).save(folder / "blank.png")
    result = run_in_process(
        "predict", [f"ckpt_path={trained_capsnet.last}", f"input={folder}"], tmp_path / "out"
    )
    assert result.code == 0, result.output[-3000:]
    said = result.output
    assert "one.png: converted from RGB to greyscale; resized from 64x80 to 28x28; inverted" in said
    for name in ("one", "blank"):
        with Image.open(tmp_path / "out" / f"{name}_reconstruction.png") as picture:
            assert picture.size == (2 * 30 + 2, 30 + 2)  # input and reconstruction side by side


def test_predict_refuses_what_it_cannot_read(trained_capsnet, tmp_path):
    (tmp_path / "note.png").write_text("not an image")
    overrides = [f"ckpt_path={trained_capsnet.last}", f"input={tmp_path / 'note.png'}"]
    result = run_in_process("predict", overrides, tmp_path)
    assert result.code == 2
    assert "note.png: not an image Pillow can read" in result.output
