"""A trained module from a checkpoint file, without running anything the file could carry."""

import importlib
import pickle
import re
from pathlib import Path

import torch

from capsnet.errors import ConfigError, NonFiniteError
from capsnet.models.classifier import MODULE_CLASS_KEY, ClassifierModule

# The LightningModule classes a checkpoint may name, by import path: this project's, and any class of
# your own that subclasses ClassifierModule (add its "capsnet.models.<module>.<Class>" here: eval,
# predict and resume then accept its checkpoints). Nothing a checkpoint names is imported unless it is
# listed; names that checkpoints written before the package had layers carry map to today's.
REGISTERED_MODULES = (
    "capsnet.models.capsnet.CapsNetModule",
    "capsnet.models.baseline_cnn.BaselineCNNModule",
    "capsnet.models.multimnist.MultiMNISTCapsNetModule",
)
RENAMED_MODULES = {
    "capsnet.module.CapsNetModule": "capsnet.models.capsnet.CapsNetModule",
    "capsnet.baseline.BaselineCNNModule": "capsnet.models.baseline_cnn.BaselineCNNModule",
    "capsnet.multimnist_module.MultiMNISTCapsNetModule": "capsnet.models.multimnist.MultiMNISTCapsNetModule",
}


def read_checkpoint(ckpt_path: str | Path) -> dict:
    """A checkpoint file's contents, loaded as weights only; anything else is refused by name.

    A checkpoint is a pickle, and unpickling anything but tensors and plain values can run code: a file
    that needs more (a class, a function) is refused, and what it asked for is named.
    """
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(error))
        if wanted is None:  # not a pickle of a checkpoint at all
            raise ConfigError(
                f"ckpt_path={ckpt_path}: not a readable checkpoint; not a .ckpt file?"
            ) from None
        raise ConfigError(
            f"ckpt_path={ckpt_path}: refused, it is not weights and values only (it asks to import "
            f"{wanted.group(1)}, and loading it could run code)"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"ckpt_path={ckpt_path}: not a readable checkpoint ({reason}); truncated, or not a .ckpt file?"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path={ckpt_path}: not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def module_class_of(checkpoint: dict, ckpt_path: str | Path) -> type[ClassifierModule]:
    """The registered module class a checkpoint names; a name that is not registered is refused."""
    name = checkpoint.get(MODULE_CLASS_KEY)
    path = RENAMED_MODULES.get(name, name)
    if path not in REGISTERED_MODULES:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: names module class {name!r}, not one of this project's "
            f"({', '.join(REGISTERED_MODULES)}; a class of your own is registered in {__name__})"
        )
    module_name, _, class_name = path.rpartition(".")
    module_class = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(module_class, type) and issubclass(module_class, ClassifierModule)):
        raise ConfigError(f"{__name__}.REGISTERED_MODULES: {path} is not a ClassifierModule")
    return module_class


def non_finite_tensors(tensors: dict) -> list[str]:
    """The names of the floating-point tensors in ``tensors`` that hold a NaN or an infinity."""
    return [
        name
        for name, value in tensors.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]


def load_classifier(ckpt_path: str | Path) -> ClassifierModule:
    """The module a checkpoint holds, of the class it names, on the CPU: built from its saved
    hyperparameters and given its weights, from the one read of the file (what ``load_from_checkpoint``
    does, without reading it a second time)."""
    checkpoint = read_checkpoint(ckpt_path)
    if bad := non_finite_tensors(checkpoint["state_dict"]):
        raise NonFiniteError(
            f"ckpt_path={ckpt_path}: {len(bad)} of its weight tensors hold NaN or infinite values "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): the model diverged; "
            "use an earlier checkpoint"
        )
    module_class = module_class_of(checkpoint, ckpt_path)
    hyperparameters = checkpoint.get("hyper_parameters", {})
    try:  # the same ranges as the command line's, before anything is allocated
        module = module_class(**hyperparameters) if isinstance(hyperparameters, dict) else None
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: its hyperparameters do not make a {module_class.__name__}: {error} "
            "(a checkpoint of another version of this project, or damaged)"
        ) from None
    if module is None:
        raise ConfigError(f"ckpt_path={ckpt_path}: its hyper_parameters are not a mapping")
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError) as error:
        first = " ".join(str(error).split())[:300]
        raise ConfigError(
            f"ckpt_path={ckpt_path}: its weights do not fit the network its hyperparameters describe "
            f"({first})"
        ) from None
    return module
