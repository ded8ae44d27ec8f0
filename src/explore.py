"""The capsule explorer: `python src/explore.py ckpt_path=<file>.ckpt`, a page on http://127.0.0.1:7860."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from capsnet.run.entry import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="explore")
def main(cfg: DictConfig):
    return run("capsnet.run.tasks.explore", cfg)


if __name__ == "__main__":
    main()
