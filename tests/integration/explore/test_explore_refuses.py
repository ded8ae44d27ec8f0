"""src/explore.py refuses what it cannot serve, in one line, before any server starts."""

import socket

import torch

from tests.helpers import run_in_process


def test_a_bad_port_or_range_is_refused_by_name(trained_capsnet, tmp_path):
    for override, message in (
        ("port=70000", "port=70000 is invalid; allowed: an integer from 1 to 65535"),
        ("pose_range=0", "pose_range=0 is invalid; allowed: a number > 0.0 and <= 10.0"),
    ):
        result = run_in_process("explore", [f"ckpt_path={trained_capsnet.last}", override], tmp_path)
        assert result.code == 2 and message in result.output, result.output[-2000:]


def test_a_checkpoint_without_capsules_or_with_code_is_refused(tmp_path):
    from capsnet.run.tasks import build_model
    from tests.helpers import compose_config

    baseline = build_model(compose_config("train", ["model=baseline_cnn"]))
    checkpoint = {"state_dict": baseline.state_dict(), "hyper_parameters": dict(baseline.hparams)}
    baseline.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "baseline.ckpt")
    result = run_in_process("explore", [f"ckpt_path={tmp_path / 'baseline.ckpt'}"], tmp_path / "out")
    assert result.code == 2
    assert "a BaselineCNNModule checkpoint; the explorer shows a CapsNet's capsules" in result.output

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"state_dict": {}, "payload": Payload()}, tmp_path / "crafted.ckpt")
    result = run_in_process("explore", [f"ckpt_path={tmp_path / 'crafted.ckpt'}"], tmp_path / "out2")
    assert result.code == 2 and "refused, it is not weights and values only" in result.output
    assert "\nran\n" not in result.output


def test_a_port_in_use_is_refused_by_name(trained_capsnet, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_in_process("explore", [f"ckpt_path={trained_capsnet.last}", f"port={port}"], tmp_path)
    assert result.code == 2, result.output[-2000:]
    assert (
        f"port={port}: cannot serve there" in result.output and "choose another with port=" in result.output
    )


def test_the_test_tab_is_off_with_a_reason_when_the_data_does_not_fit(data_overrides, tmp_path):
    from capsnet.run.tasks import explorer_test_set
    from tests.helpers import compose_config

    cfg = compose_config("explore", ["ckpt_path=x.ckpt", *data_overrides])
    images, labels, problem = explorer_test_set(cfg, (1, 28, 28))
    assert images.shape == (37, 1, 28, 28) and images.dtype == torch.uint8 and len(labels) == 37
    assert problem == ""
    images, _, problem = explorer_test_set(cfg, (1, 36, 36))  # a MultiMNIST network, MNIST's images
    assert (
        images is None
        and problem == "the test images of data are 1x28x28; this checkpoint's network takes 1x36x36"
    )
    missing = compose_config("explore", ["ckpt_path=x.ckpt", *data_overrides, f"data.data_dir={tmp_path}"])
    images, _, problem = explorer_test_set(missing, (1, 28, 28))
    assert images is None and "is missing" in problem
