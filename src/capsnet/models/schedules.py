"""The official CapsNet code's learning-rate schedule (one-cycle is torch's ``OneCycleLR`` as it is)."""

import torch


def exponential_decay(
    optimizer: torch.optim.Optimizer, decay_rate: float = 0.96, decay_steps: int = 2000
) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = lr_0 * decay_rate ** (t / decay_steps), stepped every optimizer step: smooth, not stairs.

    Torch's ``ExponentialLR`` takes the per-step factor; the official code (and ``conf/model/scheduler``)
    states the schedule as these two numbers, so the config keeps them.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay_rate ** (step / decay_steps))
