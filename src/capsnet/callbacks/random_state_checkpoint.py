"""Random generators' states in every checkpoint: a resumed run draws what the uninterrupted one would."""

import random

import lightning as L
import numpy as np
import torch


class RandomStateCheckpoint(L.Callback):
    """Saves the random number generators' states in every checkpoint and restores them on resume,
    so that a resumed run draws the same augmentation shifts as the run it continues."""

    # Tensors, numbers and lists only: checkpoints load with torch.load(weights_only=True).
    def state_dict(self) -> dict:
        _, keys, position, has_gauss, cached_gauss = np.random.get_state(legacy=True)
        version, python_state, python_gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss],
            "python": [version, list(python_state), python_gauss],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        keys, position, has_gauss, cached_gauss = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
        version, python_state, python_gauss = state["python"]
        random.setstate((version, tuple(python_state), python_gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
