"""The explorer's computations: the network's own outputs, the decoder under moved poses, the couplings
on the primary capsules' grid."""

import pytest
import torch

from capsnet.errors import ConfigError
from capsnet.explore.inspection import CapsuleInspector
from capsnet.nn.squash import capsule_lengths


@pytest.fixture(scope="module")
def inspector():
    from capsnet.run.tasks import build_model
    from tests.conftest import SMALL_CAPSNET
    from tests.helpers import compose_config

    torch.manual_seed(0)
    return CapsuleInspector(build_model(compose_config("train", SMALL_CAPSNET)))


def test_an_inspection_is_the_networks_forward_pass(inspector):
    image = torch.rand(1, 28, 28)
    seen = inspector.inspect(image)
    with torch.no_grad():
        output = inspector.module(image.unsqueeze(0))
    assert torch.equal(seen.lengths, output.lengths[0])
    assert seen.prediction == int(output.lengths.argmax())
    assert torch.equal(seen.reconstruction, output.reconstructions[0])
    assert seen.poses.shape == (10, 16) and seen.couplings.shape == (3, 144, 10)  # 3 routing iterations
    assert seen.primary_lengths.shape == (144,) and (seen.primary_lengths < 1).all()


def test_the_decoder_draws_the_moved_capsule(inspector):
    seen = inspector.inspect(torch.rand(1, 28, 28))
    unmoved = inspector.decode(seen.poses, seen.prediction, torch.zeros(16))
    assert torch.allclose(unmoved, seen.reconstruction, atol=1e-6)  # no offset: the forward's reconstruction
    offsets = torch.zeros(16)
    offsets[3] = 0.25
    moved = inspector.decode(seen.poses, seen.prediction, offsets)
    assert not torch.allclose(moved, unmoved)
    other = (seen.prediction + 1) % 10
    poses = seen.poses.clone()
    poses[other, 3] += 0.25
    with torch.no_grad():  # any capsule: the decoder of that capsule alone, others masked
        expected = inspector.net.decoder(
            (poses * torch.nn.functional.one_hot(torch.tensor(other), 10)[:, None]).flatten()[None]
        )[0]
    assert torch.allclose(inspector.decode(seen.poses, other, offsets), expected, atol=1e-6)


def test_couplings_lie_on_the_primary_grid_in_type_row_column_order(inspector):
    seen = inspector.inspect(torch.rand(1, 28, 28))
    maps = inspector.coupling_maps(seen, capsule=4)
    passes = len(seen.couplings)
    assert maps.shape == (passes, 4, 6, 6)  # the small network's 4 capsule types on the 6x6 grid
    assert torch.equal(maps[-1, 2, 5, 1], seen.couplings[-1, 2 * 36 + 5 * 6 + 1, 4])
    assert torch.allclose(
        maps[0], torch.full_like(maps[0], 0.1)
    )  # Procedure 1 starts uniform over 10 parents
    weighted = inspector.coupling_maps(seen, capsule=4, weighted=True)
    assert torch.allclose(weighted.flatten(1), maps.flatten(1) * seen.primary_lengths)
    primary = inspector.net.primary(torch.relu(inspector.net.conv(seen.image[None])))[0]
    assert torch.allclose(seen.primary_lengths, capsule_lengths(primary), atol=1e-6)
    entropies = inspector.entropies(seen.couplings)
    assert len(entropies) == passes and entropies[0] == pytest.approx(2.302585, abs=1e-5)  # log 10


def test_a_baseline_checkpoint_is_refused_by_name():
    from capsnet.models.baseline_cnn import BaselineCNNModule
    from capsnet.run.tasks import build_model
    from tests.helpers import compose_config

    baseline = build_model(compose_config("train", ["model=baseline_cnn"]))
    assert isinstance(baseline, BaselineCNNModule)
    with pytest.raises(
        ConfigError, match=r"ckpt_path=b\.ckpt: a BaselineCNNModule checkpoint; the explorer shows"
    ):
        CapsuleInspector(baseline, "b.ckpt")


def test_browsers_inspecting_at_once_each_get_their_own_primary_capsules(inspector):
    """The page runs handlers in threads: each inspection's hook sees its own forward pass only."""
    from concurrent.futures import ThreadPoolExecutor

    images = [torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(s)) for s in range(8)]
    alone = [inspector.inspect(image).primary_lengths for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda image: inspector.inspect(image).primary_lengths, images))
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))
