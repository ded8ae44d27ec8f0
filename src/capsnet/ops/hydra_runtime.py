"""What Hydra knows about the running job (its config, whether it is one job of a multirun), and the
``${run_suffix:}`` that makes every run folder this process's own.

Run and sweep folders are named by the second they start in (``conf/hydra/default.yaml``); two runs
started in the same second (a shell loop with ``&``, a job array) would share one. The suffix is this
process's id and a short hash of the host name: unique among processes running at once, on one machine
or on several sharing a file system. Registered on import: every entry point imports this module
before Hydra resolves the folder.
"""

import os
import socket
import zlib

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

RUN_SUFFIX = f"{os.getpid()}-{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"
if not OmegaConf.has_resolver("run_suffix"):
    OmegaConf.register_new_resolver("run_suffix", lambda: RUN_SUFFIX)


def hydra_config() -> DictConfig | None:
    """The ``hydra`` node of the running job, or None outside ``@hydra.main`` (tests, scripts)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    from hydra.types import RunMode

    hydra_cfg = hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN
