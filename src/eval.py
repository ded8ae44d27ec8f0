"""Evaluate a checkpoint on the test set: `python src/eval.py ckpt_path=path/to/file.ckpt`."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from capsnet.run.entry import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> dict[str, float]:
    return run("capsnet.run.tasks.evaluate", cfg)


if __name__ == "__main__":
    main()
