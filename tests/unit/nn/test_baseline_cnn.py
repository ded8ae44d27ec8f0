"""The paper's baseline CNN: its parameter count."""

import torch

from capsnet.nn.baseline_cnn import BaselineCNN


def test_baseline_has_the_papers_parameter_count():
    net = BaselineCNN()
    assert sum(p.numel() for p in net.parameters()) == 35_445_522  # the paper: "35.4M"
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
