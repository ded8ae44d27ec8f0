"""Leaky routing: Procedure 1 with an orphan parent (the official CapsNet code's ``leaky=True``; the paper's
"none of the above" category of its CIFAR-10 model, section 7).

Each child also couples to an extra parent whose logit is always 0 and whose output is discarded, so
a child that agrees with none of the real parents can send its vote nowhere:

    c_ij = exp(b_ij) / (1 + sum_k exp(b_ik))      the softmax over [0, b_i1, ..., b_iJ], orphan dropped
                                                  (so sum_j c_ij < 1; at b = 0 every c_ij = 1/(J+1))

Everything else (the agreement updates, iterations, ``detach_inner``) is ``DynamicRouting``'s.
"""

import torch

from capsnet.nn.routing import DynamicRouting


class LeakyRouting(DynamicRouting):
    def normalise(self, logits: torch.Tensor) -> torch.Tensor:
        """logits b [J, B, I] -> couplings [J, B, I], with the orphan's 0 logit in the softmax."""
        orphan = logits.new_zeros((1, *logits.shape[1:]))
        return torch.softmax(torch.cat([orphan, logits]), dim=0)[1:]

    def shares(self, parents: int) -> int:
        return parents + 1  # the orphan takes a share
