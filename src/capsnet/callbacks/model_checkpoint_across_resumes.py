"""Lightning's ModelCheckpoint, whose ranking of checkpoints goes on when a run is resumed in a new folder."""

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class ModelCheckpointAcrossResumes(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps the best checkpoints of the run it continues, in any folder.

    ``python src/train.py ckpt_path=last`` continues a run in a new run folder. Lightning then keeps
    only the best checkpoint's path and forgets its score and the other kept checkpoints, so the first
    epoch after the resume counts as the best whatever its score, and the run tests that one at its
    end instead of the best of the whole run. Here the ranking goes on with the checkpoints that are
    still on disk; a better epoch takes the lead in the new folder (Lightning deletes files only in its
    own folder, so the earlier folders keep theirs).

    Checkpoints are ranked only on a held-out validation split: in a run that does not validate
    (``data.val_size=0``, the paper's protocol), nothing is ranked; ``save_top_k`` then keeps the newest
    epochs' checkpoints (-1: every epoch's).
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.monitor is not None and not getattr(trainer.datamodule, "held_out_validation", True):
            self.monitor = None  # before Lightning restores a checkpoint's state (its key names the monitor)
        super().setup(trainer, pl_module, stage)

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's key and the file name: Lightning's key alone is the same for two instances
        that differ only in what they save (``last`` and ``epoch_{epoch:03d}`` with no monitor, the
        same mode and trigger), which then restore each other's state, and one deletes the other's file."""
        return f"{self._legacy_state_key}{{'filename': {self.filename!r}}}"

    @property
    def _legacy_state_key(self) -> str:
        """ModelCheckpoint's own key: checkpoints saved by it, or by this class before the file name was
        in the key, continue into this one (Lightning looks this key up when the other is missing)."""
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {**state_dict, "dirpath": self.dirpath}  # the same run, continued: its ranking too
        if self.monitor is not None and state_dict.get("dirpath", self.dirpath) != self.dirpath:
            ranked = state_dict.get("best_k_models", {})
            kept = {path: score for path, score in ranked.items() if Path(path).is_file()}
            if ranked and not kept:  # its checkpoints are gone: Lightning's fresh ranking (it warns)
                super().load_state_dict(state_dict)
                return
            if kept:  # (none ranked yet, stopped before the first validation: nothing to carry)
                better_first = sorted(kept, key=lambda path: float(kept[path]), reverse=self.mode == "max")
                best, kth = better_first[0], better_first[-1]
                state.update(best_k_models=kept, best_model_path=best, best_model_score=kept[best])
                state.update(kth_best_model_path=kth, kth_value=kept[kth])
        super().load_state_dict(state)
