"""src/eval.py: a checkpoint tested again gives the accuracy training reported, with the network the
checkpoint was trained with; checkpoints written before the package had layers still load."""

import csv
import json
import shutil

import torch
from PIL import Image

from tests.helpers import run_in_process


def test_eval_rebuilds_the_trained_network_and_agrees_with_training(
    trained_capsnet, data_overrides, tmp_path
):
    with open(trained_capsnet.out / "csv" / "metrics.csv") as file:
        train_test_acc = [float(row["test/acc"]) for row in csv.DictReader(file) if row["test/acc"]]
    assert len(train_test_acc) == 1
    saved = torch.load(trained_capsnet.best, map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["routing"]["iterations"] == 2

    # eval rebuilds the 2-iteration network from the checkpoint, whatever its own config says.
    result = run_in_process("eval", [f"ckpt_path={trained_capsnet.best}", *data_overrides], tmp_path)
    assert result.code == 0, result.output[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert abs(metrics["test/acc"] - train_test_acc[0]) < 1e-4
    assert abs(metrics["test/acc"] + metrics["test/error"] - 1.0) < 1e-4
    assert {"test/margin_loss", "test/reconstruction_loss", "test/total_loss"} <= set(metrics)
    assert {"test/routing_entropy_iter1", "test/routing_entropy_iter2"} <= set(metrics)
    assert "test/acc" in result.output  # the table of results


def test_checkpoint_of_the_flat_package_still_loads(trained_capsnet, data_overrides, tmp_path):
    """Checkpoints made before the restructuring name `capsnet.module.CapsNetModule` and carry the
    routing, decoder and loss groups as hyperparameters under the same names: they load and test alike."""
    old = torch.load(trained_capsnet.best, map_location="cpu", weights_only=True)
    old["module_class"] = "capsnet.module.CapsNetModule"
    old["hyper_parameters"]["scheduler"]["_target_"] = "capsnet.optim.exponential_decay"
    torch.save(old, tmp_path / "old.ckpt")
    shutil.copy(trained_capsnet.best, tmp_path / "new.ckpt")
    for name in ("old", "new"):
        overrides = [f"ckpt_path={tmp_path / name}.ckpt", *data_overrides, "callbacks=none"]
        assert run_in_process("eval", overrides, tmp_path / name).code == 0
    old_metrics = json.loads((tmp_path / "old" / "metrics.json").read_text())
    assert old_metrics == json.loads((tmp_path / "new" / "metrics.json").read_text())


def test_a_checkpoint_of_diverged_weights_is_refused_by_eval_and_predict(
    trained_capsnet, data_overrides, tmp_path
):
    diverged = torch.load(trained_capsnet.best, map_location="cpu", weights_only=True)
    diverged["state_dict"]["net.digits.weight"][0, 0, 0, 0] = float("nan")
    torch.save(diverged, tmp_path / "nan.ckpt")
    message = f"ckpt_path={tmp_path / 'nan.ckpt'}: 1 of its weight tensors hold NaN or infinite values"
    result = run_in_process(
        "eval", [f"ckpt_path={tmp_path / 'nan.ckpt'}", *data_overrides], tmp_path / "eval"
    )
    assert result.code == 4 and message in result.output
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    result = run_in_process(
        "predict", [f"ckpt_path={tmp_path / 'nan.ckpt'}", f"input={image}"], tmp_path / "p"
    )
    assert result.code == 4 and message in result.output
