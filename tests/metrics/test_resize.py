"""MATLAB bicubic imresize against values derived independently from the kernel formula."""

import math

import numpy as np
import pytest
import torch

from bench.metrics import imresize


def test_downscale_by_two_of_a_ramp_hand_derived():
    # imresize([1 2 3 4], [1 2]): scale 1/2, kernel h(t) = cubic(t/2)/2 of width 8.
    # Output 1 samples u = 1/0.5 + 0.5 (1 - 2) = 1.5; taps at -2..5 have distances
    # 3.5, 2.5, 1.5, 0.5, -0.5, ... so cubic(1.75) = -0.0234375, cubic(1.25) = -0.0703125,
    # cubic(0.75) = 0.2265625, cubic(0.25) = 0.8671875 (halved, they sum to 1). Mirroring
    # maps taps -2, -1, 0 to pixels 3, 2, 1 and tap 5 to pixel 4, so
    # y1 = (-0.0234375*3 - 0.0703125*2 + 0.2265625*1 + 0.8671875*1 + 0.8671875*2
    #       + 0.2265625*3 - 0.0703125*4 - 0.0234375*4) / 2 = 1.4609375,
    # and by symmetry y2 = 5 - y1 = 3.5390625.
    ramp = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(1, 1, 1, 4)
    out = imresize(ramp, (1, 2))
    assert out.flatten().tolist() == pytest.approx([1.4609375, 3.5390625], abs=1e-12)


def _cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _resize_line(line: list[float], n_out: int, edge: str = "symmetric") -> list[float]:
    """Scalar transcription of MATLAB's contributions() for one axis (test reference); taps
    outside the line mirrored, or (``edge="clamp"``, older releases) clamped to the end."""
    n_in = len(line)
    scale = n_out / n_in
    stretch = scale if scale < 1 else 1.0
    width = 4 / stretch
    result = []
    for x in range(1, n_out + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        weights = [stretch * _cubic(stretch * (u - j)) for j in taps]
        total = sum(weights)
        value = 0.0
        for j, w in zip(taps, weights, strict=True):
            if edge == "clamp":
                value += w / total * line[min(max(j, 1), n_in) - 1]
                continue
            k = (j - 1) % (2 * n_in)  # symmetric padding: 1..n, n..1
            value += w / total * line[k if k < n_in else 2 * n_in - 1 - k]
        result.append(value)
    return result


def _reference(
    image: np.ndarray, size: tuple[int, int], uint8: bool, edge: str = "symmetric"
) -> np.ndarray:
    scales = {0: size[0] / image.shape[0], 1: size[1] / image.shape[1]}
    out = image.astype(np.float64)
    for axis in sorted(scales, key=lambda a: (scales[a], a)):
        lines = np.moveaxis(out, axis, -1)
        resized = np.array([_resize_line(list(row), size[axis], edge) for row in lines])
        out = np.moveaxis(resized, -1, axis)
        if uint8:
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out


@pytest.mark.parametrize("size", [(3, 4), (9, 7), (5, 2), (4, 11)])
def test_float_resize_matches_scalar_reference(size):
    image = np.random.default_rng(0).random((6, 8))
    ours = imresize(torch.from_numpy(image).view(1, 1, 6, 8), size)[0, 0].numpy()
    assert np.max(np.abs(ours - _reference(image, size, uint8=False))) < 1e-12


def test_uint8_resize_rounds_and_saturates_after_each_axis():
    image = np.random.default_rng(1).integers(0, 256, (7, 10)).astype(np.uint8)
    image[:, :3] = 255  # a hard edge: bicubic overshoots beyond 255 and below 0
    image[:, 3:5] = 0
    ours = imresize(torch.from_numpy(image).view(1, 1, 7, 10), (4, 5))
    assert ours.dtype == torch.uint8
    assert np.array_equal(ours[0, 0].numpy(), _reference(image, (4, 5), uint8=True))


def test_same_size_is_identity_and_constant_stays_constant():
    image = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8)
    assert torch.equal(imresize(image, (5, 6)), image)
    flat = torch.full((1, 3, 48, 64), 0.3, dtype=torch.float64)
    assert torch.allclose(
        imresize(flat, (20, 20)), torch.full((1, 3, 20, 20), 0.3, dtype=torch.float64)
    )


def test_the_older_clamped_edge_rule_hand_derived():
    """imresize([1 2 3 4], [1 2]) as older MATLAB releases made it: the taps -2, -1, 0 read
    pixel 1 and tap 5 pixel 4 (clamped, not mirrored), so with the weights of the test above
    y1 = (-0.0234375 - 0.0703125 + 0.2265625 + 0.8671875 + 0.8671875*2 + 0.2265625*3
          - 0.0703125*4 - 0.0234375*4) / 2 = 1.51953125, and y2 = 5 - y1."""
    ramp = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(1, 1, 1, 4)
    out = imresize(ramp, (1, 2), edge="clamp")
    assert out.flatten().tolist() == pytest.approx([1.51953125, 3.48046875], abs=1e-12)


def test_the_two_edge_rules_differ_only_in_the_border_band():
    """A x4 bicubic downscale (how SR test sets' LR images are made): the clamped rule
    matches its scalar reference, and differs from the mirrored one only in the outer two
    output pixels on each side, the ones whose taps (2 / s = 8 input pixels each way) reach
    past the border; inside they are equal."""
    image = np.random.default_rng(1).integers(0, 256, (48, 40)).astype(np.uint8)
    tensor = torch.from_numpy(image).view(1, 1, 48, 40)
    clamped = imresize(tensor, (12, 10), edge="clamp")[0, 0].numpy().astype(float)
    mirrored = imresize(tensor, (12, 10))[0, 0].numpy().astype(float)
    assert np.array_equal(clamped, _reference(image, (12, 10), uint8=True, edge="clamp"))
    difference = np.abs(clamped - mirrored)
    assert difference[2:-2, 2:-2].max() == 0 and difference.max() > 0
    with pytest.raises(ValueError, match="unknown imresize edge"):
        imresize(tensor, (12, 10), edge="wrap")
