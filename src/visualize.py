"""Capsule insights of a checkpoint as PNG files, no W&B needed.

    python src/visualize.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt [figures_dir=DIR]

Writes (next to the checkpoint unless ``figures_dir`` is given) and prints the paths of:
test_reconstructions.png, test_pose_perturbation.png, test_routing_entropy.png,
test_confusion_matrix.png, test_final_couplings.png, test_capsule_lengths.png.
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from capsnet.run.entry import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="visualize")
def main(cfg: DictConfig):
    return run("capsnet.run.tasks.visualize", cfg)


if __name__ == "__main__":
    main()
