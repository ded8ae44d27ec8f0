"""scripts/export.py: a trained checkpoint as torch.export (.pt2) and ONNX files that give the checkpoint's
capsule lengths, loaded back and run (ONNX through onnxruntime) on test images."""

import importlib.util

import torch

from tests.helpers import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("export", ROOT / "scripts" / "export.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_both_formats_give_the_checkpoints_capsule_lengths(trained_capsnet, synthetic_data, tmp_path, capsys):
    script = _script()
    images = synthetic_data[0] / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    code = script.main(
        [
            str(trained_capsnet.last),
            "--out",
            str(tmp_path),
            "--images",
            str(images),
            "--check-images",
            "40",
            "--batch-size",
            "16",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    for name in ("capsnet.pt2", "capsnet.onnx"):
        assert (
            f"{tmp_path / name}: " in printed
            and "(ok: tolerance 0.0001), the same class for 100.00%" in printed
        )
    # Any batch size: the exported program takes 3 images though it was traced with 8.
    program = torch.export.load(tmp_path / "capsnet.pt2").module()
    lengths, reconstructions = program(script.load_images(images, 3))
    assert lengths.shape == (3, 10) and reconstructions.shape == (3, 1, 28, 28)


def test_a_checkpoint_that_is_not_a_capsnet_is_refused_by_name(tmp_path):
    script = _script()
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    try:
        script.main([str(bad), "--out", str(tmp_path / "out")])
    except SystemExit as exit_:
        assert "notes.ckpt" in str(exit_.code)
    else:
        raise AssertionError("a file that is not a checkpoint was exported")
