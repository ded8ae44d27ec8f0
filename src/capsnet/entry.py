"""Shared by ``src/train.py`` and ``src/eval.py``: bad configs and missing data end the process
with one clear line and a non-zero exit code instead of a traceback."""

import sys
from collections.abc import Callable

from omegaconf import DictConfig

from capsnet.data.files import DataError
from capsnet.validation import ConfigError

EXIT_BAD_CONFIG = 2
EXIT_NO_DATA = 3


def run_reporting_errors(task: Callable[[DictConfig], object], cfg: DictConfig):
    try:
        return task(cfg)
    except ConfigError as error:
        print(f"Invalid config: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    except DataError as error:
        print(f"Data error: {error}", file=sys.stderr)
        sys.exit(EXIT_NO_DATA)
