"""What the capsules learned, as tensors: pose perturbations and length statistics.

Pure functions of a network's outputs; ``capsnet.callbacks.capsule_insights`` turns them into logged
pictures (PNG files for ``src/visualize.py``). Routing entropy is in ``capsnet.nn.routing``.
"""

import torch

from capsnet.nn.decoder import ReconstructionDecoder


def perturbation_steps(limit: float = 0.25, step: float = 0.05) -> torch.Tensor:
    """The paper's fig. 4 offsets: -0.25, -0.20, ..., +0.25 (11 values)."""
    count = round(2 * limit / step) + 1
    return torch.linspace(-limit, limit, count)


@torch.no_grad()
def perturb_and_decode(
    decoder: ReconstructionDecoder, poses: torch.Tensor, classes: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """Decode each chosen capsule with one dimension moved at a time (paper section 5.1, fig. 4).

    poses v [N, J, D], classes [N], offsets [S] -> images [N, D, S, C, H, W]: image (n, d, s) is the
    reconstruction from capsule ``classes[n]`` of example n with component d shifted by offsets[s],
    every other capsule masked to zero as in evaluation.
    """
    count, parents, dim = poses.shape
    chosen = poses[torch.arange(count, device=poses.device), classes]  # [N, D]
    shifts = torch.eye(dim, device=poses.device, dtype=poses.dtype)  # [D, D]: moves component d
    moved = chosen[:, None, None, :] + shifts[None, :, None, :] * offsets.to(poses)[None, None, :, None]
    masked = poses.new_zeros(count, dim, len(offsets), parents, dim)  # [N, D, S, J, D]
    masked[torch.arange(count), :, :, classes] = moved
    images = decoder(masked.flatten(-2).flatten(0, 2))  # [N*D*S, C, H, W]
    return images.view(count, dim, len(offsets), *images.shape[1:])


def lengths_by_truth(lengths: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Capsule lengths [B, J] split into the true classes' and all the others'.

    labels: [B] (one class each) or [B, k] (k classes each, as in MultiMNIST).
    """
    is_true = torch.zeros_like(lengths, dtype=torch.bool).scatter_(1, labels.view(len(labels), -1), True)
    return lengths[is_true], lengths[~is_true]
