"""MultiMNIST pairs: different classes, shifts within bounds, seeded; composition on the device."""

import torch


def test_multimnist_pairs_are_of_different_classes_within_bounds_and_seeded(tmp_path):
    from capsnet.data.multimnist import MAX_SHIFT, cached_pair_table

    labels = torch.arange(50).remainder(10).numpy().astype("uint8")
    table = cached_pair_table(tmp_path / "a", labels, pairs_per_digit=3, seed=1, split="train")
    assert (
        len(table["first"]) == 150 and (table["first"] == torch.arange(50).repeat_interleave(3).numpy()).all()
    )
    assert (labels[table["first"]] != labels[table["second"]]).all()
    assert table["shifts"].min() >= -MAX_SHIFT and table["shifts"].max() <= MAX_SHIFT
    assert len({tuple(row) for row in table["shifts"].tolist()}) > 100  # really random
    again = cached_pair_table(tmp_path / "b", labels, pairs_per_digit=3, seed=1, split="train")
    other = cached_pair_table(tmp_path / "c", labels, pairs_per_digit=3, seed=2, split="train")
    assert all((again[k] == table[k]).all() for k in table)
    assert not (other["second"] == table["second"]).all()


def test_multimnist_composition_places_each_digit_and_clips_the_sum():
    from capsnet.data.multimnist import compose_pairs

    first, second = torch.zeros(1, 28, 28), torch.zeros(1, 28, 28)
    first[0, 10:18, 10:18] = 0.8
    second[0, 12:20, 12:20] = 0.7
    overlays, alone = compose_pairs(first, second, torch.tensor([[2, -3, 0, 0]]))
    assert overlays.shape == (1, 1, 36, 36) and alone.shape == (1, 2, 1, 36, 36)
    assert torch.equal(alone[0, 0, 0, 4 + 2 : 32 + 2, 4 - 3 : 32 - 3], first[0])  # down 2, left 3
    assert torch.equal(alone[0, 1, 0, 4:32, 4:32], second[0])  # centred
    assert torch.equal(overlays[0, 0], (alone[0, 0, 0] + alone[0, 1, 0]).clamp(max=1.0))
    assert overlays.max() == 1.0  # 0.8 + 0.7 clipped
