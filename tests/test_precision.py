"""Mixed precision computes the same function as float32, within bf16's resolution."""

import torch

from capsnet.losses import CapsuleLoss
from capsnet.network import CapsNet


def test_bf16_autocast_close_to_fp32_on_a_fixed_batch():
    torch.manual_seed(0)
    net = CapsNet().to(memory_format=torch.channels_last)
    images = (torch.rand(16, 1, 28, 28) * (torch.rand(16, 1, 28, 28) > 0.7)).contiguous(
        memory_format=torch.channels_last
    )
    labels = torch.arange(16) % 10
    targets = torch.nn.functional.one_hot(labels, 10).float()
    # Train briefly so that the capsules are not all near zero length, where everything agrees trivially.
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = CapsuleLoss()
    for _ in range(5):
        output = net(images, labels)
        optimizer.zero_grad()
        criterion(output.lengths, targets, output.reconstructions, images).total.backward()
        optimizer.step()

    with torch.no_grad():
        full = net(images, labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(images, labels)
    assert half.lengths.dtype == torch.float32  # routing and lengths stay float32
    assert full.lengths.max() > 0.05
    assert torch.allclose(half.lengths, full.lengths, rtol=0.05, atol=0.01)
    assert torch.equal(half.lengths.argmax(1), full.lengths.argmax(1))
    full_loss = criterion(full.lengths, targets, full.reconstructions, images)
    half_loss = criterion(half.lengths, targets, half.reconstructions, images)
    assert abs(half_loss.margin - full_loss.margin) < 0.02 * full_loss.margin + 1e-3
