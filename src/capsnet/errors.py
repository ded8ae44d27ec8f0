"""The project's exceptions, and the exit code each one ends a run with (``capsnet.run.entry``).

Every message is one line that names the setting or file at fault and what would fix it. This module
imports nothing, so that the config check can run before torch loads.
"""


class ConfigError(ValueError):
    """A config value, or a file named by one (``ckpt_path``), that cannot be used."""


class InputError(ValueError):
    """An input file or folder that cannot be classified."""


class DataError(RuntimeError):
    """A dataset that cannot be obtained or does not pass verification."""


class IDXFormatError(DataError):
    """A file that is not a well-formed unsigned-byte IDX file."""


class DiskFullError(RuntimeError):
    """A checkpoint does not fit on its disk; the message says where, how much it needs and what is free."""


class NonFiniteError(RuntimeError):
    """NaN or infinite weights or outputs (in a checkpoint, about to be saved, or in evaluation)."""


class NonFiniteLossError(NonFiniteError):
    """Training produced a NaN or infinite loss; the message says where and what to try."""


class Interrupted(Exception):
    """SIGTERM (a scheduler ending the job) or Ctrl-C outside training: nothing is left half-written."""


EXIT_BAD_CONFIG = 2
EXIT_NO_DATA = 3
EXIT_NON_FINITE_LOSS = 4
EXIT_DISK_FULL = 5
EXIT_INTERRUPTED = 143  # 128 + SIGTERM, as a shell reports a process ended by it

# (what the one-line message starts with, exit code), by exception type
FAILURES: dict[type[Exception], tuple[str, int]] = {
    ConfigError: ("Invalid config", EXIT_BAD_CONFIG),
    InputError: ("Invalid input", EXIT_BAD_CONFIG),
    DataError: ("Data error", EXIT_NO_DATA),
    NonFiniteLossError: ("Training failed", EXIT_NON_FINITE_LOSS),
    NonFiniteError: ("Non-finite values", EXIT_NON_FINITE_LOSS),
    DiskFullError: ("Disk full", EXIT_DISK_FULL),
    Interrupted: ("Interrupted", EXIT_INTERRUPTED),
}
