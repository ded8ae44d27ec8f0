"""Learning-rate schedules, stepped once per optimizer step."""

import torch


def exponential_decay(
    optimizer: torch.optim.Optimizer, decay_rate: float = 0.96, decay_steps: int = 2000
) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = lr_0 * decay_rate ** (t / decay_steps): the official CapsNet code's smooth decay."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay_rate ** (step / decay_steps))


def one_cycle(
    optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int, pct_start: float = 0.25
) -> torch.optim.lr_scheduler.OneCycleLR:
    """Warm up to ``max_lr`` over ``pct_start`` of the run, then anneal (cosine) to ~0 (Smith, 2018).

    ``total_steps`` is filled in by the module from the Trainer (``estimated_stepping_batches``).
    """
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start
    )
