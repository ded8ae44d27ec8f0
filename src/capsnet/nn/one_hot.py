"""Class labels as one-hot rows."""

import torch


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[B] class indices -> [B, num_classes] rows of 0 and 1.

    Unlike ``torch.nn.functional.one_hot``, no range check: on a GPU that check copies a value to the
    host and stalls the training step.
    """
    # shape[0], not len(): a symbolic size when the network is exported for any batch size
    rows = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    return rows.scatter_(1, labels.unsqueeze(1), 1.0)
