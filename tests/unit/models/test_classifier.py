"""What every classifier module keeps across a checkpoint beyond its weights."""

import torch

from capsnet.run.tasks import build_model
from tests.conftest import SMALL_CAPSNET
from tests.helpers import compose_config


def test_the_best_validation_accuracy_survives_a_checkpoint():
    """val/acc_best is what sweepers optimize: a resumed run must remember the validations before it."""
    config = compose_config("train", SMALL_CAPSNET)
    trained = build_model(config)
    for accuracy in (0.9, 0.7):
        trained.val_acc_best.update(torch.tensor(accuracy))
    checkpoint = {}
    trained.on_save_checkpoint(checkpoint)

    resumed = build_model(config)
    resumed.on_load_checkpoint(checkpoint)
    resumed.val_acc_best.update(torch.tensor(0.95))  # the sanity check's validation: not counted
    resumed.on_train_start()
    assert resumed.val_acc_best.compute().item() == torch.tensor(0.9).item()

    fresh = build_model(config)  # a checkpoint saved before any validation, or none: nothing to restore
    fresh.on_load_checkpoint({"val_acc_best": float("-inf")})
    fresh.on_train_start()
    fresh.val_acc_best.update(torch.tensor(0.5))
    assert fresh.val_acc_best.compute().item() == 0.5


def test_a_non_finite_evaluation_loss_is_an_error_not_a_score():
    import pytest

    from capsnet.errors import NonFiniteError

    module = build_model(compose_config("train", SMALL_CAPSNET))
    module.loss_means["test_total"].update(torch.tensor([0.5, float("nan")]))
    with pytest.raises(NonFiniteError, match="the test loss is nan: the model's outputs on the test set"):
        module._log_eval_epoch("test")
