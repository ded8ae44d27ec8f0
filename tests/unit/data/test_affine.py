"""The generated affNIST proxy: seeded, within its ranges, regenerated when its cache is corrupt."""

import pytest
import torch

from tests.helpers import bar_digits


def test_affine_proxy_is_deterministic_and_within_its_ranges(tmp_path):
    from capsnet.data.affine import AffineRanges, affine_test_set

    images, labels = bar_digits()
    ranges = AffineRanges()
    first = affine_test_set(tmp_path / "a", images, labels, seed=3, ranges=ranges)
    again = affine_test_set(tmp_path / "b", images, labels, seed=3, ranges=ranges)
    other = affine_test_set(tmp_path / "c", images, labels, seed=4, ranges=ranges)
    assert (first[0] == again[0]).all() and (first[2] == again[2]).all()
    assert not (first[0] == other[0]).all()
    assert first[0].shape == (12, 40, 40) and (first[1] == labels).all()
    rotation, shear, scale, dx, dy = torch.from_numpy(first[2]).T
    assert rotation.abs().max() <= 20 and shear.abs().max() <= 0.2
    assert scale.min() >= 0.8 and scale.max() <= 1.2 and max(dx.abs().max(), dy.abs().max()) <= 6


def test_affine_transform_moves_as_stated():
    from capsnet.data.affine import transform_images

    images, _ = bar_digits(1)
    identity = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    centred = transform_images(torch.from_numpy(images), identity, 40)
    assert torch.equal(centred[0, 6:34, 6:34], torch.from_numpy(images[0]))  # centred, unchanged
    shifted = transform_images(
        torch.from_numpy(images), torch.tensor([[0.0, 0.0, 1.0, 5.0, -3.0]]).double(), 40
    )
    assert torch.equal(shifted[0, 3:31, 11:39], torch.from_numpy(images[0]))  # 5 right, 3 up


@pytest.mark.parametrize("damage", ["flipped byte", "truncated idx", "empty json"])
def test_corrupt_cached_proxy_is_generated_again(tmp_path, damage):
    from capsnet.data.affine import AffineRanges, affine_test_set

    images, labels = bar_digits()
    made = affine_test_set(tmp_path, images, labels, seed=0, ranges=AffineRanges())
    (cached,) = tmp_path.glob("*-images.idx")
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    if damage == "flipped byte":
        cached.write_bytes(bytes(data))
    elif damage == "truncated idx":
        cached.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (record,) = tmp_path.glob("*.json")
        record.write_text("")
    again = affine_test_set(tmp_path, images, labels, seed=0, ranges=AffineRanges())
    assert (again[0] == made[0]).all()
