"""A trained module from a checkpoint file, without running anything the file could carry."""

import pickle
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


def load_classifier(ckpt_path: str | Path) -> ClassifierModule:
    """The module a checkpoint holds, of the class it names, on the CPU."""
    try:
        # weights_only: a checkpoint is a pickle, and unpickling anything else can run code.
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConfigError(f"ckpt_path={ckpt_path}: refused, it holds more than weights ({error})") from error
    name = checkpoint.get(MODULE_CLASS_KEY)
    if name not in MODULE_CLASSES:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: names module class {name!r}, not one of this project's "
            f"({', '.join(sorted(MODULE_CLASSES))})"
        )
    return MODULE_CLASSES[name].load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
