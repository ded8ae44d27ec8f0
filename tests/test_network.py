import torch

from capsnet.decoder import mask_capsules
from capsnet.network import CapsNet


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_parameter_counts():
    net = CapsNet()
    assert count(net) == 8_215_568
    assert count(net) - count(net.decoder) == 6_804_224


def test_output_shapes():
    output = CapsNet(routing_iterations=2)(torch.rand(3, 1, 28, 28))
    assert output.lengths.shape == (3, 10)
    assert output.poses.shape == (3, 10, 16)
    assert output.reconstructions.shape == (3, 1, 28, 28)
    assert [c.shape for c in output.couplings] == [(3, 1152, 10)] * 2
    assert ((output.reconstructions >= 0) & (output.reconstructions <= 1)).all()


def test_mask_keeps_only_the_chosen_capsule():
    poses = torch.randn(2, 10, 16)
    masked = mask_capsules(poses, torch.tensor([3, 7])).view(2, 10, 16)
    assert torch.equal(masked[0, 3], poses[0, 3]) and torch.equal(masked[1, 7], poses[1, 7])
    masked[0, 3] = 0
    masked[1, 7] = 0
    assert (masked == 0).all()


def test_decoder_masks_by_label_when_given_else_by_longest_capsule():
    torch.manual_seed(0)
    net = CapsNet()
    images = torch.rand(4, 1, 28, 28)
    by_prediction = net(images)
    predicted = by_prediction.lengths.argmax(dim=1)
    expected = net.decoder(mask_capsules(by_prediction.poses, predicted))
    assert torch.allclose(by_prediction.reconstructions, expected)
    other = (predicted + 1) % 10
    by_label = net(images, other)
    assert torch.allclose(by_label.reconstructions, net.decoder(mask_capsules(by_label.poses, other)))
    assert not torch.allclose(by_label.reconstructions, by_prediction.reconstructions)


def test_one_hot_matches_torch():
    from capsnet.labels import one_hot

    labels = torch.tensor([3, 0, 9, 3])
    assert torch.equal(one_hot(labels, 10), torch.nn.functional.one_hot(labels, 10).float())
