"""The exercise checks of notebook 09 reject typical mistakes with the right message and accept the solution."""

from __future__ import annotations

import pytest
import torch

from course_lib.teaching.checks import nb09 as checks
from course_lib.teaching.checks.common import ExerciseError


def permute_reference(images, permutation):
    return images.flatten(1)[:, permutation].view_as(images)


def permute_inverse(images, permutation):
    flat = images.flatten(1)
    out = torch.empty_like(flat)
    out[:, permutation] = flat
    return out.view_as(images)


def permute_flat(images, permutation):
    return images.flatten(1)[:, permutation]


def permute_rows_only(images, permutation):
    rows = images.shape[-2]
    order = permutation[permutation < rows]  # a permutation of the row indices
    return images[..., order, :]


def permute_one_per_image(images, permutation):
    out = []
    for i, image in enumerate(images):
        p = permutation.roll(i)  # a different permutation per image
        out.append(image.flatten()[p].view_as(image))
    return torch.stack(out)


def permute_batch(images, permutation):
    return images[torch.arange(images.shape[0]).flip(0)]


def permute_identity(images, permutation):
    return images


def permute_in_place_noise(images, permutation):
    return permute_reference(images, permutation) + 0.01


WRONG_PERMUTATIONS = [
    (permute_inverse, "INVERSE"),
    (permute_flat, "keep the image shape"),
    (permute_rows_only, "right order"),
    (permute_one_per_image, "SAME permutation"),
    (permute_batch, "batch dimension"),
    (permute_identity, "unchanged"),
    (permute_in_place_noise, "values changed"),
]


def test_the_reference_permutation_passes(capsys):
    checks.check_permute_pixels(permute_reference)
    assert "check_permute_pixels: all 3 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", WRONG_PERMUTATIONS, ids=[w.__name__ for w, _ in WRONG_PERMUTATIONS])
def test_wrong_permutations_are_rejected_with_the_reason(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        checks.check_permute_pixels(wrong)


def kept_reference(acc_in, acc_out, ways):
    return (acc_out - 1 / ways) / (acc_in - 1 / ways)


WRONG_SHARES = [
    (lambda a, b, n: b / a, "subtract chance"),
    (lambda a, b, n: (a - 1 / n) / (b - 1 / n), "swapped"),
    (lambda a, b, n: (b - 0.5) / (a - 0.5), "1/ways"),
    (lambda a, b, n: b - a, "difference"),
    (lambda a, b, n: 100 * (b - 1 / n) / (a - 1 / n), "percentage"),
    (lambda a, b, n: (b - 1 / n) / a, "expected"),
]


def test_the_reference_share_passes(capsys):
    checks.check_kept_share(kept_reference)
    assert "check_kept_share: all 5 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", WRONG_SHARES, ids=[m for _, m in WRONG_SHARES])
def test_wrong_shares_are_rejected_with_the_reason(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        checks.check_kept_share(wrong)


def test_an_unfinished_exercise_is_reported_not_hidden():
    def unfinished(images, permutation):
        raise NotImplementedError("Exercise: permute")

    with pytest.raises(NotImplementedError):
        checks.check_permute_pixels(unfinished)


def test_the_library_permutation_passes_the_check():
    from course_lib import capstone

    checks.check_permute_pixels(capstone.permute_pixels)
