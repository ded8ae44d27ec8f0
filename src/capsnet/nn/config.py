"""The CapsNet's architecture as one typed config object, field for field the keys of the config groups.

``routing.iterations`` on the command line is ``CapsNetConfig.routing.iterations`` here and the
``iterations`` of ``DynamicRouting``: one name from YAML to the code. Plain dataclasses (no torch), so
that the entry points also check the types of these groups against them before torch loads.
"""

from dataclasses import dataclass, field

PARAMETRISATIONS = ("paper", "official")


@dataclass(frozen=True)
class RoutingConfig:
    """``conf/routing``: Procedure 1's number of iterations, and whether inner agreements get gradients."""

    iterations: int = 3
    detach_inner: bool = False


@dataclass(frozen=True)
class DecoderConfig:
    """``conf/decoder``: the reconstruction MLP's hidden sizes and alpha, its loss weight."""

    hidden: tuple[int, ...] = (512, 1024)
    alpha: float = 0.0005


@dataclass(frozen=True)
class LossConfig:
    """``conf/loss``: the margin loss (eq. 4) and its weight in the total."""

    margin_weight: float = 1.0
    m_plus: float = 0.9
    m_minus: float = 0.1
    absent_weight: float = 0.5  # lambda


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
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def __post_init__(self):
        if self.parametrisation not in PARAMETRISATIONS:
            raise ValueError(
                f"model.net.parametrisation={self.parametrisation!r}; allowed: {', '.join(PARAMETRISATIONS)}"
            )

    @classmethod
    def from_groups(cls, net: dict, routing: dict, decoder: dict) -> "CapsNetConfig":
        """From the config groups as plain dicts (what checkpoints store as hyperparameters)."""
        net = {**net, "image_shape": tuple(net.get("image_shape", cls.image_shape))}
        decoder = {**decoder, "hidden": tuple(decoder.get("hidden", DecoderConfig.hidden))}
        return cls(**net, routing=RoutingConfig(**routing), decoder=DecoderConfig(**decoder))
