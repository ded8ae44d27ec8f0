"""Shared by ``src/train.py`` and ``src/eval.py``: validate the config, then run the task.

Validation comes before torch and Lightning are imported, so a bad value fails in about a second;
bad configs and missing data end the process with one clear line and a non-zero exit code
instead of a traceback.
"""

import sys

from omegaconf import DictConfig

from capsnet.data.files import DataError
from capsnet.validation import ConfigError, validate_config

EXIT_BAD_CONFIG = 2
EXIT_NO_DATA = 3


def run(task: str, cfg: DictConfig):
    """Run ``capsnet.pipeline.<task>`` (``train`` or ``evaluate``) on a validated config."""
    try:
        validate_config(cfg)
        from capsnet import pipeline

        return getattr(pipeline, task)(cfg)
    except ConfigError as error:
        print(f"Invalid config: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    except DataError as error:
        print(f"Data error: {error}", file=sys.stderr)
        sys.exit(EXIT_NO_DATA)
