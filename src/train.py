"""Train a CapsNet: `python src/train.py [overrides]`, e.g. `routing.iterations=1 decoder.alpha=0`.

Returns the value of `optimized_metric` (default `val/acc_best`), which Hydra sweepers optimize.
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from capsnet.run.entry import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # data, model, callbacks, loggers, trainer, then fit and test
    return run("capsnet.run.tasks.train", cfg)


if __name__ == "__main__":
    main()
