"""The CapsNet's architecture as one typed config object, field for field the keys of the config groups.

``decoder.alpha`` on the command line is ``CapsNetConfig.decoder.alpha`` here. The ``routing`` group is
kept as it is (its ``_target_`` and that class's settings: ``routing.iterations`` is the ``iterations``
of ``DynamicRouting``), since each routing has settings of its own (``capsnet.nn.routing``).
Plain dataclasses, no torch.
"""

from dataclasses import dataclass, field

PARAMETRISATIONS = ("paper", "official")


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
    # conf/routing: the paper's Procedure 1 unless another routing is named
    routing: dict = field(
        default_factory=lambda: {
            "_target_": "capsnet.nn.routing.DynamicRouting",
            "iterations": 3,
            "detach_inner": False,
        }
    )
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
        return cls(**net, routing=dict(routing), decoder=DecoderConfig(**decoder))
