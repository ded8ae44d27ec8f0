"""Errors that end a run with one clear line (``capsnet.entry``), importable without torch."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message says where and what to try."""


class InputError(ValueError):
    """An input file or folder that cannot be classified; the message names it and why."""
