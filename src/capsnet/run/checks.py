"""Checks of the composed config, run before torch loads, any data is touched or any model is built.

Each rule names a key, the values it allows (type and range together), and a test; the first failure
becomes a ``ConfigError`` whose one-line message names the key, the value given and what is allowed.
(Unknown keys are refused earlier, by Hydra's struct mode.)
"""

import importlib.util
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from capsnet.errors import ConfigError
from capsnet.nn.config import (
    CAPSNET_MODULES,
    MAX_ITERATIONS,
    ROUTING_PRECISIONS,
    CapsNetConfig,
    LossConfig,
    from_dict,
    invalid_value,
    is_int,
    is_number,
)
from capsnet.ops.hydra_runtime import in_multirun


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str  # what the message says is allowed
    test: Callable[[object], bool]
    optional: bool = False  # null (or a missing key) is fine

    def check(self, cfg: DictConfig) -> None:
        value = OmegaConf.select(cfg, self.key, default=None)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if value is None and self.optional:
            return
        if value is None or not self.test(value):
            raise ConfigError(invalid_value(self.key, value, self.allowed))


def int_at_least(key: str, low: int, optional: bool = False) -> Rule:
    return Rule(key, f"an integer >= {low}", lambda v: is_int(v) and v >= low, optional)


def number_in(key: str, low: float, high: float | None = None, *, open_low=False, optional=False) -> Rule:
    above = (lambda v: v > low) if open_low else (lambda v: v >= low)
    below = (lambda v: True) if high is None else (lambda v: v <= high)
    text = f"a number {'>' if open_low else '>='} {low}" + ("" if high is None else f" and <= {high}")
    return Rule(key, text, lambda v: is_number(v) and above(v) and below(v), optional)


def boolean(key: str, optional: bool = False) -> Rule:
    return Rule(key, "true or false", lambda v: isinstance(v, bool), optional)


# The images are float32: whole-network 16/bf16/64-bit precisions ("-true", "64") would meet them with
# another dtype. Mixed precision keeps float32 weights and casts inside autocast.
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")
MAX_SEED = 2**32 - 1  # what numpy (and so Lightning's seed_everything) accepts
MAX_TAG = 64  # W&B refuses longer tags
# Signals a scheduler may warn with: POSIX's names, whatever this platform has (Windows lacks SIGUSR1, and
# the job then skips it: capsnet.ops.requeue); SIGTERM and SIGINT already stop training with a checkpoint.
POSIX_SIGNALS = {
    "SIGHUP", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGUSR1", "SIGSEGV", "SIGUSR2",
    "SIGPIPE", "SIGALRM", "SIGCHLD", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
    "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
}  # fmt: skip
REQUEUE_SIGNALS = (POSIX_SIGNALS | {s.name for s in signal.Signals}) - {
    "SIGTERM",
    "SIGINT",
    "SIGKILL",
    "SIGSTOP",
}

RULES: tuple[Rule, ...] = (
    Rule(  # the routings that iterate
        "routing.iterations",
        f"an integer from 1 to {MAX_ITERATIONS}",
        lambda v: is_int(v) and 1 <= v <= MAX_ITERATIONS,
        optional=True,
    ),
    boolean("routing.detach_inner", optional=True),
    Rule(
        "routing.precision",
        " or ".join(ROUTING_PRECISIONS),
        lambda v: v in ROUTING_PRECISIONS,
        optional=True,
    ),
    int_at_least("data.batch_size", 1),
    int_at_least("batch_size", 1, optional=True),  # predict.yaml
    int_at_least("data.eval_batch_size", 1, optional=True),
    int_at_least("data.val_size", 0),
    int_at_least("data.train_subset", 1, optional=True),
    int_at_least("data.shift_pixels", 0),
    int_at_least("data.num_workers", 0),
    int_at_least("data.num_classes", 2),
    number_in("model.optimizer.lr", 0.0, open_low=True, optional=True),
    number_in("model.scheduler.decay_rate", 0.0, 1.0, open_low=True, optional=True),
    int_at_least("model.scheduler.decay_steps", 1, optional=True),
    Rule(
        "trainer.max_epochs",
        "an integer >= 1, or -1 for no limit (then trainer.max_steps ends the run); 0 trains nothing",
        lambda v: is_int(v) and (v >= 1 or v == -1),
        optional=True,
    ),
    Rule(
        "trainer.max_steps",
        "an integer >= 1, or -1 for no limit; 0 trains nothing",
        lambda v: is_int(v) and (v >= 1 or v == -1),
        optional=True,
    ),
    int_at_least("trainer.accumulate_grad_batches", 1, optional=True),
    Rule(
        "trainer.val_check_interval",
        "a fraction of an epoch in (0, 1], a number of steps >= 1, or null",
        lambda v: (is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
        optional=True,
    ),
    Rule("invert", "auto, true or false", lambda v: str(v).lower() in ("auto", "true", "false"), True),
    Rule("center", "auto, true or false", lambda v: str(v).lower() in ("auto", "true", "false"), True),
    Rule("port", "an integer from 1 to 65535", lambda v: is_int(v) and 1 <= v <= 65535, True),  # explore.yaml
    number_in("pose_range", 0.0, 10.0, open_low=True, optional=True),
    number_in("max_upload_mb", 0.0, open_low=True, optional=True),
    Rule(  # predict.yaml
        "device",
        "auto, cpu, cuda, cuda:<index> or mps",
        lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None,
        optional=True,
    ),
    number_in("callbacks.stop_at_accuracy.target", 0.0, 1.0, optional=True),
    Rule("trainer.precision", f"one of {', '.join(PRECISIONS)}", lambda v: str(v) in PRECISIONS),
    Rule("seed", f"an integer in [0, {MAX_SEED}]", lambda v: is_int(v) and 0 <= v <= MAX_SEED, optional=True),
    Rule(
        "tags",
        f"a list of tags of 1 to {MAX_TAG} characters",
        lambda v: isinstance(v, list) and all(isinstance(t, str) and 1 <= len(t) <= MAX_TAG for t in v),
        optional=True,
    ),
    int_at_least("malloc_mmap_threshold", 0, optional=True),
    boolean("huge_pages", optional=True),
    boolean("skip_triton_on_cpu", optional=True),
    Rule(
        "requeue_signals",
        "a list of signal names other than SIGTERM, SIGINT and SIGKILL, e.g. [SIGUSR1, SIGUSR2]",
        lambda v: isinstance(v, list) and all(name in REQUEUE_SIGNALS for name in v),
        optional=True,
    ),
    Rule(
        "callbacks.wandb_watch.log",
        "gradients, parameters or all (null: off)",
        lambda v: v in ("gradients", "parameters", "all"),
        optional=True,
    ),
    int_at_least("callbacks.wandb_watch.log_freq", 1, optional=True),
    Rule(
        "logger.wandb.mode",
        "auto, online, offline or disabled",
        lambda v: v in ("auto", "online", "offline", "disabled"),
        optional=True,
    ),
)


def _plain(cfg: DictConfig, key: str) -> dict:
    return OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=True)


def _check_model_settings(cfg: DictConfig) -> None:
    """The model's groups, built as the typed configs the model takes (``capsnet.nn.config``): their
    range rules live beside their fields, and the first broken one names the key."""
    try:
        if "loss" in cfg:
            from_dict(LossConfig, "loss", _plain(cfg, "loss"))
        if OmegaConf.select(cfg, "model._target_") in CAPSNET_MODULES:
            CapsNetConfig.from_groups(
                _plain(cfg, "model.net"), _plain(cfg, "routing"), _plain(cfg, "decoder")
            )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def validates(cfg: DictConfig) -> bool:
    """Whether a training run has a validation loop: data.val_size=0 (the paper's protocol) has none."""
    return OmegaConf.select(cfg, "data.val_size") != 0


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value, or for a ``ckpt_path`` that is not a file."""
    for rule in RULES:
        if rule.key.split(".")[0] in cfg:  # predict.yaml, say, has no data, routing or trainer groups
            rule.check(cfg)
    _check_model_settings(cfg)
    if OmegaConf.select(cfg, "logger.tensorboard") and not any(
        importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX")
    ):
        raise ConfigError("logger=tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'")
    if OmegaConf.select(cfg, "logger.mlflow") and not OmegaConf.select(cfg, "logger.mlflow.tracking_uri"):
        raise ConfigError(
            "logger=mlflow needs a tracking server: set MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:5000 "
            "after `mlflow server`) or logger.mlflow.tracking_uri"
        )
    metric = cfg.get("optimized_metric")
    if in_multirun() and not validates(cfg) and str(metric or "").startswith("val/"):
        raise ConfigError(
            f"optimized_metric={metric} needs a validation set, and data.val_size=0 validates nothing (the "
            "paper's protocol): tune on held-out images with data.val_size=5000"
        )
    ckpt_path = cfg.get("ckpt_path")
    resumable = "train" in cfg  # src/train.py resolves ckpt_path=auto and last; eval needs a file
    words = ("auto", "last") if resumable else ()
    if ckpt_path is not None and ckpt_path not in words and not Path(ckpt_path).is_file():
        hint = "a .ckpt file, auto or last" if resumable else "a .ckpt file"
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no such file; give the path of {hint}")
