"""What Hydra knows about the running job: its config, and whether it is one job of a multirun."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def hydra_config() -> DictConfig | None:
    """The ``hydra`` node of the running job, or None outside ``@hydra.main`` (tests, scripts)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    from hydra.types import RunMode

    hydra_cfg = hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN
