import torch

from xaisec.training import random_crop_flip


def test_crop_is_a_translation_and_seeded():
    x = torch.rand(8, 3, 10, 10)
    a = random_crop_flip(x, pad=2, flip=False, generator=torch.Generator().manual_seed(0))
    b = random_crop_flip(x, pad=2, flip=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    # every output's centre 6x6 block appears somewhere in the source image (pure translation)
    for i in range(8):
        found = any(torch.equal(a[i, :, 2:8, 2:8], x[i, :, 2 + dy:8 + dy, 2 + dx:8 + dx])
                    for dy in range(-2, 3) for dx in range(-2, 3))
        assert found


def test_flip_only_flips():
    x = torch.rand(64, 1, 4, 4)
    y = random_crop_flip(x, pad=0, flip=True, generator=torch.Generator().manual_seed(1))
    same = (y == x).flatten(1).all(1)
    flipped = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54
