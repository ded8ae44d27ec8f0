"""The CapsNet's settings as typed config objects, field for field the keys of the config groups, each
field's allowed values beside it.

``decoder.alpha`` on the command line is ``DecoderConfig.alpha`` here, read by the network and the loss
from this one place. The ``routing`` group is kept as it is (its ``_target_`` and that class's settings:
``routing.iterations`` is the ``iterations`` of ``DynamicRouting``, which checks it), since each routing
has settings of its own (``capsnet.nn.routing``). The config check (``capsnet.run.checks``) builds these
objects before anything runs, so a bad value fails in a second with one line naming the key.
Plain dataclasses, no torch.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar

PARAMETRISATIONS = ("paper", "official")
# model.net's sizes: (lowest, highest). Far beyond the paper's; they bound what a file can ask for.
SIZES = {
    "num_classes": (2, 1000),
    "conv_channels": (1, 4096),
    "conv_kernel": (1, 64),
    "primary_types": (1, 1024),
    "primary_dim": (1, 256),
    "primary_kernel": (1, 64),
    "primary_stride": (1, 64),
    "digit_dim": (1, 256),
}
MAX_WIDTH = 65536  # of a decoder layer
MAX_ITERATIONS = 100  # of a routing; the paper's is 3, and a file must not ask for 10^9
# routing.precision: float32 always, or bfloat16 for the votes' products where autocast is bf16.
ROUTING_PRECISIONS = ("float32", "bf16")
MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights; the paper's network has 8.2M

# The LightningModules whose model.net is a CapsNetConfig (named, not imported: this module has no torch).
CAPSNET_MODULES = (
    "capsnet.models.capsnet.CapsNetModule",
    "capsnet.models.multimnist.MultiMNISTCapsNetModule",
)

Rules = dict[str, tuple[str, Callable[[object], bool]]]  # field -> (what is allowed, its test)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def invalid_value(key: str, value, allowed: str) -> str:
    """The one-line message of every refused setting, here and in the config check."""
    return f"{key}={value!r} is invalid; allowed: {allowed}"


def _check_rules(config, group: str, rules: Rules) -> None:
    for name, (allowed, test) in rules.items():
        value = getattr(config, name)
        if not test(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise ValueError(invalid_value(f"{group}.{name}", shown, allowed))


def from_dict(cls, group: str, values: dict, **others):
    """``cls(**values, **others)``, with a key of ``values`` that ``cls`` does not have refused by name."""
    known = {f.name for f in fields(cls)} - set(others)
    if unknown := sorted(set(values) - known):
        raise ValueError(f"{group}.{unknown[0]}: no such key (the {group} keys: {', '.join(sorted(known))})")
    return cls(**values, **others)


@dataclass(frozen=True)
class DecoderConfig:
    """``conf/decoder``: the reconstruction MLP's hidden sizes and alpha, its loss weight."""

    hidden: tuple[int, ...] = (512, 1024)
    alpha: float = 0.0005
    RULES: ClassVar[Rules] = {
        "hidden": (
            f"a list of integers from 1 to {MAX_WIDTH}",
            lambda v: isinstance(v, tuple) and all(is_int(n) and 1 <= n <= MAX_WIDTH for n in v),
        ),
        "alpha": ("a number >= 0", lambda v: is_number(v) and v >= 0),
    }

    def __post_init__(self):
        object.__setattr__(
            self, "hidden", tuple(self.hidden) if isinstance(self.hidden, list) else self.hidden
        )
        _check_rules(self, "decoder", self.RULES)


@dataclass(frozen=True)
class LossConfig:
    """``conf/loss``: the margin loss (eq. 4) and its weight in the total (``decoder.alpha`` weighs the
    reconstruction's)."""

    margin_weight: float = 1.0
    m_plus: float = 0.9
    m_minus: float = 0.1
    absent_weight: float = 0.5  # lambda
    RULES: ClassVar[Rules] = {
        "margin_weight": ("a number >= 0", lambda v: is_number(v) and v >= 0),
        "m_plus": ("a number > 0 and <= 1", lambda v: is_number(v) and 0 < v <= 1),
        "m_minus": ("a number >= 0 and <= 1", lambda v: is_number(v) and 0 <= v <= 1),
        "absent_weight": ("a number >= 0", lambda v: is_number(v) and v >= 0),
    }

    def __post_init__(self):
        _check_rules(self, "loss", self.RULES)
        if self.m_minus >= self.m_plus:
            raise ValueError(f"loss.m_minus={self.m_minus} must be below loss.m_plus={self.m_plus}")


@dataclass(frozen=True)
class CapsNetConfig:
    """``model.net`` with the ``routing`` and ``decoder`` groups: the whole network (section 4)."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    conv_channels: int = 256
    conv_kernel: int = 9
    primary_types: int = 32
    primary_dim: int = 8
    primary_kernel: int = 9
    primary_stride: int = 2
    digit_dim: int = 16
    weight_init_std: float = 0.01  # W_ij ~ N(0, std^2); the paper does not say
    # "paper": the text's network (torch's default initialisation elsewhere); "official": the official
    # code's (capsnet.nn.capsnet.OFFICIAL_PARAMETRISATION), which fixes every initial value itself.
    parametrisation: str = "paper"
    # conf/routing: the paper's Procedure 1 unless another routing is named
    routing: dict = field(
        default_factory=lambda: {
            "_target_": "capsnet.nn.routing.DynamicRouting",
            "iterations": 3,
            "detach_inner": False,
        }
    )
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    RULES: ClassVar[Rules] = {
        "weight_init_std": ("a number > 0", lambda v: is_number(v) and v > 0),
        "parametrisation": (" or ".join(PARAMETRISATIONS), lambda v: v in PARAMETRISATIONS),
    }

    def __post_init__(self):
        """The ranges of the sizes, checked before anything is allocated: the same for the command line
        and for a checkpoint's hyperparameters (a stranger's file must not exhaust memory or time)."""
        _check_rules(self, "model.net", self.RULES)
        image = self.image_shape
        if not (len(image) == 3 and all(is_int(n) for n in image) and 1 <= image[0] <= 4):
            raise ValueError(f"model.net.image_shape={list(image)}: [channels (1 to 4), height, width]")
        for name, (low, high) in SIZES.items():
            value = getattr(self, name)
            if not (is_int(value) and low <= value <= high):
                raise ValueError(f"model.net.{name}={value!r}: an integer from {low} to {high}")
        if (parameters := self.parameter_count()) > MAX_PARAMETERS:
            raise ValueError(f"model.net: {parameters:,} parameters; at most {MAX_PARAMETERS:,}")

    def parameter_count(self) -> int:
        """The weights' count (without the routing's own), from the sizes alone."""
        channels, height, width = self.image_shape
        grid = max(0, (height - self.conv_kernel + 1 - self.primary_kernel) // self.primary_stride + 1)
        grid *= max(0, (width - self.conv_kernel + 1 - self.primary_kernel) // self.primary_stride + 1)
        primary = self.primary_types * self.primary_dim
        conv = self.conv_channels * (channels * self.conv_kernel**2 + 1)
        conv += primary * (self.conv_channels * self.primary_kernel**2 + 1)
        digits = self.primary_types * grid * self.primary_dim * self.num_classes * self.digit_dim
        widths = [self.num_classes * self.digit_dim, *self.decoder.hidden, channels * height * width]
        decoder = sum((a + 1) * b for a, b in itertools.pairwise(widths))
        return conv + digits + decoder

    @classmethod
    def from_groups(cls, net: dict, routing: dict, decoder: dict) -> "CapsNetConfig":
        """From the config groups as plain dicts (what checkpoints store as hyperparameters)."""
        net = {**net, "image_shape": tuple(net.get("image_shape", cls.image_shape))}
        decoder = from_dict(DecoderConfig, "decoder", decoder)
        return from_dict(cls, "model.net", net, routing=dict(routing), decoder=decoder)
