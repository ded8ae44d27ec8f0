"""Classify images with a checkpoint: `python src/predict.py ckpt_path=<file>.ckpt input=<image or dir>`."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from capsnet.run.entry import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig):
    return run("capsnet.run.tasks.predict", cfg)


if __name__ == "__main__":
    main()
