"""A trained module from a checkpoint file, without running anything the file could carry."""

import pickle
import re
from pathlib import Path

import torch

from capsnet.errors import ConfigError
from capsnet.models.baseline_cnn import BaselineCNNModule
from capsnet.models.capsnet import CapsNetModule
from capsnet.models.classifier import MODULE_CLASS_KEY, ClassifierModule
from capsnet.models.multimnist import MultiMNISTCapsNetModule

# The classes a checkpoint may name: this project's own, under today's module paths and those that
# checkpoints written before the package had layers carry. Nothing else is ever imported.
MODULE_CLASSES: dict[str, type[ClassifierModule]] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (CapsNetModule, BaselineCNNModule, MultiMNISTCapsNetModule)
}
MODULE_CLASSES |= {
    "capsnet.module.CapsNetModule": CapsNetModule,
    "capsnet.baseline.BaselineCNNModule": BaselineCNNModule,
    "capsnet.multimnist_module.MultiMNISTCapsNetModule": MultiMNISTCapsNetModule,
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
    """The project's module class a checkpoint names; a name that is not one of them is refused."""
    name = checkpoint.get(MODULE_CLASS_KEY)
    if name not in MODULE_CLASSES:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: names module class {name!r}, not one of this project's "
            f"({', '.join(sorted(MODULE_CLASSES))})"
        )
    return MODULE_CLASSES[name]


def load_classifier(ckpt_path: str | Path) -> ClassifierModule:
    """The module a checkpoint holds, of the class it names, on the CPU: built from its saved
    hyperparameters and given its weights, from the one read of the file (what ``load_from_checkpoint``
    does, without reading it a second time)."""
    checkpoint = read_checkpoint(ckpt_path)
    module = module_class_of(checkpoint, ckpt_path)(**checkpoint.get("hyper_parameters", {}))
    module.load_state_dict(checkpoint["state_dict"])
    return module
