"""One ``wandb sync`` command for a whole multirun whose jobs logged to W&B offline, printed at its end.

A Hydra callback (``conf/hydra/default.yaml``): Hydra loads it at every start, before the config is
checked, so it imports nothing heavy (no torch, no Lightning).
"""

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepUploadCommand(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if any(sweep_dir.glob("*/wandb/offline-run-*")):
            runs = f"{sweep_dir}/*/wandb/offline-run-*"
            print(f"W&B runs saved offline; to upload the whole sweep: wandb sync {runs}", flush=True)
