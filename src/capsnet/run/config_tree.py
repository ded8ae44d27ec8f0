"""Printing the resolved config as a tree at the start of a run, and saving it with the run."""

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

FIRST = ("data", "model", "routing", "loss", "decoder", "trainer", "callbacks", "logger", "paths")


def print_config_tree(cfg: DictConfig, save_dir: str | None = None) -> None:
    """Print every top-level group as a branch (groups first, then plain keys); save to ``save_dir``."""
    tree = rich.tree.Tree("CONFIG", style="bold")
    keys = [key for key in FIRST if key in cfg] + [key for key in cfg if key not in FIRST]
    for key in keys:
        branch = tree.add(str(key), style="bold")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        # The resolved values (Hydra's .hydra/config.yaml keeps the interpolations).
        Path(save_dir, "resolved_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
