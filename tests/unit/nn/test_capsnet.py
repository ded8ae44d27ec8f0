"""The whole CapsNet: the paper's parameter counts, shapes, masking, bf16, the PrimaryCaps forms, refused
input shapes."""

import pytest
import torch

from capsnet.nn.capsnet import CapsNet
from capsnet.nn.config import CapsNetConfig
from capsnet.nn.decoder import mask_capsules
from capsnet.nn.losses import CapsuleLoss


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_parameter_counts():
    net = CapsNet()
    assert count(net) == 8_215_568
    assert count(net) - count(net.decoder) == 6_804_224


def test_official_parametrisation_adds_the_digitcaps_bias_and_the_official_initial_values():
    torch.manual_seed(0)
    net = CapsNet(CapsNetConfig(parametrisation="official"))
    assert count(net) == 8_215_568 + 10 * 16  # the bias on each s_j
    stds = {"conv.weight": 0.05, "primary.conv.weight": 0.1, "digits.weight": 0.1}
    for name, parameter in net.named_parameters():
        if name in stds:  # a normal truncated at 2 std: |w| <= 2 std, and its std 0.88 std
            assert parameter.abs().max() <= 2 * stds[name]
            assert parameter.std().item() == pytest.approx(0.880 * stds[name], rel=0.02), name
        elif not name.startswith("decoder"):
            assert name.endswith("bias") and torch.all(parameter == 0.1), name
    paper = CapsNet()
    assert not hasattr(paper.digits, "bias") or paper.digits.bias is None
    assert paper.digits.weight.std().item() == pytest.approx(0.01, rel=0.01)


def test_official_primary_capsules_scale_the_votes_by_one_over_32_before_the_bias():
    from capsnet.nn.squash import squash

    torch.manual_seed(0)
    net = CapsNet(CapsNetConfig(parametrisation="official"))
    features = torch.relu(net.conv(torch.rand(2, 1, 28, 28)))
    votes = torch.nn.functional.conv2d(features, net.primary.conv.weight, stride=2)  # [B, 256, 6, 6]
    pre_squash = votes / 32 + net.primary.conv.bias.view(1, -1, 1, 1)
    expected = squash(pre_squash.view(2, 32, 8, 6, 6).permute(0, 1, 3, 4, 2).reshape(2, 1152, 8))
    assert torch.allclose(net.primary(features), expected, atol=1e-6)


def test_an_unknown_parametrisation_is_refused():
    with pytest.raises(
        ValueError, match=r"model.net.parametrisation='tf' is invalid; allowed: paper or official"
    ):
        CapsNetConfig(parametrisation="tf")


def test_output_shapes():
    output = CapsNet(CapsNetConfig(routing={"iterations": 2}))(torch.rand(3, 1, 28, 28))
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
    from capsnet.nn.one_hot import one_hot

    labels = torch.tensor([3, 0, 9, 3])
    assert torch.equal(one_hot(labels, 10), torch.nn.functional.one_hot(labels, 10).float())


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


def test_the_fourier_primary_caps_give_the_same_network(fourier_form):
    """The whole network, its loss and every parameter's gradient, with PrimaryCaps through the Fourier
    transform (float32) and with oneDNN's convolution, on any CPU."""
    torch.manual_seed(0)
    net = CapsNet().to(memory_format=torch.channels_last)
    images = torch.rand(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(8)
    targets = torch.nn.functional.one_hot(labels, 10).float()
    runs = []
    for dtypes in ((), (torch.float32,)):
        fourier_form(*dtypes)
        net.zero_grad()
        output = net(images, labels)
        CapsuleLoss()(output.lengths, targets, output.reconstructions, images).total.backward()
        runs.append((output.lengths, [p.grad.clone() for p in net.parameters()]))
    (direct, direct_grads), (fourier, fourier_grads) = runs
    torch.testing.assert_close(fourier, direct, rtol=1e-4, atol=1e-6)
    for got, want in zip(fourier_grads, direct_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


def test_bf16_fourier_primary_caps_as_close_to_float32_as_the_direct_bf16_convolution(fourier_form):
    """Under bf16 autocast, the whole network with PrimaryCaps through the Fourier transform in bf16
    (CPUs with AVX-512 BF16 and no AMX): its capsule lengths, and its loss's gradients of the PrimaryCaps
    weights, within 2.5x the distance from float32's that oneDNN's direct bf16 convolution gives (the
    measured ratios: docs/speed.md)."""
    torch.manual_seed(0)
    net = CapsNet(CapsNetConfig(conv_channels=64, primary_types=8)).to(memory_format=torch.channels_last)
    images = torch.rand(16, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(16) % 10
    targets = torch.nn.functional.one_hot(labels, 10).float()

    def run(dtypes, autocast):
        fourier_form(*dtypes)
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            output = net(images, labels)
            loss = CapsuleLoss()(output.lengths.float(), targets, output.reconstructions.float(), images)
        loss.total.backward()
        return output.lengths.float(), net.primary.conv.weight.grad.clone()

    float32 = run((torch.float32,), autocast=False)
    direct = run((torch.float32,), autocast=True)
    fourier = run((torch.float32, torch.bfloat16), autocast=True)
    for got, near, want in zip(fourier, direct, float32, strict=True):
        assert (got - want).norm() <= 2.5 * (near - want).norm()


def test_compiled_with_the_fourier_form_conv1_and_relu_are_recomputed_not_kept(fourier_form):
    """Compiled, with PrimaryCaps through the Fourier transform (which keeps its input's spectra, not its
    input), the graph keeps neither Conv1 + ReLU's output nor ReLU's mask for the backward pass (it
    recomputes them), and the gradients are eager's."""
    fourier_form(torch.float32)
    torch.manual_seed(0)
    net = CapsNet(CapsNetConfig(conv_channels=8, primary_types=2))
    images, labels = torch.rand(4, 1, 28, 28), torch.arange(4)

    def saved_tensors_and_gradients(model):
        net.zero_grad()
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            output = model(images, labels)
        (output.lengths.sum() + output.reconstructions.mean()).backward()
        return saved, [p.grad.clone() for p in net.parameters()]

    kept_by_eager, eager_grads = saved_tensors_and_gradients(net)
    kept_by_compiled, compiled_grads = saved_tensors_and_gradients(torch.compile(net))
    features = (4, 8, 20, 20)
    assert any(t.shape == features for t in kept_by_eager)  # eager's ReLU keeps its output
    assert [t.dtype for t in kept_by_compiled if t.shape == features] == []
    for got, want in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_wrong_image_shape_is_refused_with_the_expected_shape():
    from capsnet.nn.capsnet import CapsNet

    net = CapsNet(CapsNetConfig(conv_channels=8, primary_types=2))
    for wrong in (torch.rand(2, 3, 28, 28), torch.rand(2, 1, 32, 32), torch.rand(28, 28)):
        with pytest.raises(ValueError, match=r"this network takes \[batch, 1, 28, 28\]"):
            net(wrong)
