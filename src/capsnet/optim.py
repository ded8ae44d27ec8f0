"""Learning-rate schedules, stepped once per optimizer step."""

import torch


def exponential_decay(
    optimizer: torch.optim.Optimizer, decay_rate: float = 0.96, decay_steps: int = 2000
) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = lr_0 * decay_rate ** (t / decay_steps): the official CapsNet code's smooth decay."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay_rate ** (step / decay_steps))
