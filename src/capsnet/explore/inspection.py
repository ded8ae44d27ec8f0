"""What the explorer shows of one image, computed by the network's own forward pass and decoder.

Pure torch, no web page: ``capsnet.explore.page`` calls these and draws what they return.

    image [1, H, W] -> forward (evaluation: the longest capsule decoded)
        lengths ||v_j||              [J]        the class "probabilities"
        poses v_j                    [J, D]     what the sliders move
        couplings c_ij per pass      [R, I, J]  routing, children i in (type, row, column) order
        primary lengths ||u_i||      [I]        how present each child is
        reconstruction               [1, H, W]
"""

import threading
from dataclasses import dataclass

import torch

from capsnet.errors import ConfigError
from capsnet.models.capsnet import CapsNetModule
from capsnet.nn.decoder import mask_capsules
from capsnet.nn.routing import coupling_entropy
from capsnet.nn.squash import capsule_lengths


@dataclass(frozen=True)
class Inspection:
    image: torch.Tensor  # [C, H, W], what the network saw
    lengths: torch.Tensor  # [J]
    poses: torch.Tensor  # [J, D]
    couplings: torch.Tensor  # [R, I, J]
    primary_lengths: torch.Tensor  # [I]
    reconstruction: torch.Tensor  # [C, H, W], of the longest capsule

    @property
    def prediction(self) -> int:
        return int(self.lengths.argmax())


class CapsuleInspector:
    """A trained CapsNet, in evaluation mode on the CPU, asked about one image at a time."""

    def __init__(self, module: CapsNetModule, ckpt_path: str = "the checkpoint"):
        if not isinstance(module, CapsNetModule) or len(module.net.config.image_shape) != 3:
            raise ConfigError(
                f"ckpt_path={ckpt_path}: a {type(module).__name__} checkpoint; the explorer shows a "
                "CapsNet's capsules (train one with python src/train.py)"
            )
        self.module = module.eval()
        self.net = module.net
        config = self.net.config
        self.image_shape = tuple(config.image_shape)
        self.num_classes, self.pose_dim = config.num_classes, config.digit_dim
        self.primary_types = config.primary_types
        self.primary_grid = self.net.primary_grid
        # The page serves each browser from a thread of its own; the forward hook below must see only
        # its own forward pass.
        self._one_forward = threading.Lock()

    @torch.inference_mode()
    def inspect(self, image: torch.Tensor) -> Inspection:
        """One image [C, H, W] in [0, 1] through the network, as ``src/predict.py`` classifies it."""
        primary = []  # the PrimaryCaps output u [1, I, K], kept by a hook: one forward pass
        with self._one_forward:
            hook = self.net.primary.register_forward_hook(lambda module, args, u: primary.append(u))
            try:
                output = self.module(image.unsqueeze(0))
            finally:
                hook.remove()
        return Inspection(
            image=image,
            lengths=output.lengths[0].float(),
            poses=output.poses[0].float(),
            couplings=torch.stack([c[0].float() for c in output.couplings]),
            primary_lengths=capsule_lengths(primary[0][0].float()),
            reconstruction=output.reconstructions[0].float(),
        )

    @torch.inference_mode()
    def decode(self, poses: torch.Tensor, capsule: int, offsets: torch.Tensor) -> torch.Tensor:
        """The decoder's image of capsule ``capsule`` with its pose moved by ``offsets`` [D], every
        other capsule masked to zero (paper section 5.1, fig. 4): poses [J, D] -> [C, H, W]."""
        moved = poses.clone()
        moved[capsule] += offsets.to(moved)
        chosen = torch.tensor([capsule])
        return self.net.decoder(mask_capsules(moved.unsqueeze(0), chosen))[0]

    def coupling_maps(self, seen: Inspection, capsule: int, weighted: bool = False) -> torch.Tensor:
        """c_ij of every primary capsule i to parent ``capsule`` (times ||u_i||, what i sends, when
        ``weighted``), per routing pass, on the primary capsules' grid: -> [R, types, rows, columns]."""
        maps = seen.couplings[:, :, capsule]  # [R, I]
        if weighted:
            maps = maps * seen.primary_lengths
        return maps.reshape(len(maps), self.primary_types, *self.primary_grid)

    @staticmethod
    def entropies(couplings: torch.Tensor) -> list[float]:
        """Mean entropy (nats) of the children's coupling distributions, per routing pass: [R, I, J]."""
        return [float(coupling_entropy(c)) for c in couplings]
