"""Checks for the exercises of notebook 09: the capstone."""

from __future__ import annotations

from typing import Callable

import torch

from .common import fail, fail_if, passed, run_student


def check_permute_pixels(permute_pixels: Callable) -> None:
    """``permute_pixels(images [B, 1, H, W], permutation [H*W]) -> [B, 1, H, W]``: pixel i of every output
    image is pixel ``permutation[i]`` of the input image (the same permutation for every image), as
    :func:`course_lib.capstone.permute_pixels` does for the permuted test sets."""
    name = "check_permute_pixels"
    generator = torch.Generator().manual_seed(9)
    cases = [(4, 1, 5, 5), (3, 1, 28, 28), (2, 1, 3, 4)]
    for shape in cases:
        images = torch.rand(*shape, generator=generator)
        permutation = torch.randperm(shape[1] * shape[2] * shape[3], generator=generator)
        result = run_student(name, permute_pixels, images.clone(), permutation)
        fail_if(name, not isinstance(result, torch.Tensor), f"return a tensor, got {type(result).__name__}")
        if result.shape != images.shape:
            fail_if(name, result.numel() == images.numel(),
                    f"keep the image shape {tuple(images.shape)}: got {tuple(result.shape)} (flatten, permute, "
                    "then reshape back)")
            fail(name, f"expected shape {tuple(images.shape)}, got {tuple(result.shape)}")
        flat = images.flatten(1)
        want = flat[:, permutation].view_as(images)
        if torch.equal(result, want):
            continue
        inverse = torch.empty_like(flat)
        inverse[:, permutation] = flat
        fail_if(name, torch.equal(result, inverse.view_as(images)),
                "that is the INVERSE permutation: output pixel i must be input pixel permutation[i], i.e. "
                "flat[:, permutation]")
        fail_if(name, torch.equal(result, images), "the images came back unchanged")
        if torch.equal(result.flatten(1).sort(dim=1).values, flat.sort(dim=1).values):
            fail_if(name, not torch.equal(result[0], want[0]),
                    "each image keeps its pixel values but not in the right order: apply the same permutation "
                    "to the flattened pixels of every image (not to rows or columns only)")
            fail(name, "every image must get the SAME permutation (the first image is right, others are not)")
        fail_if(name, torch.equal(result.sort(dim=0).values, images.sort(dim=0).values),
                "the images were shuffled among themselves: permute the pixels within each image, not the "
                "batch dimension")
        fail(name, "the pixel values changed: a permutation only moves pixels")
    passed(name, len(cases))


def check_kept_share(kept_share: Callable) -> None:
    """``kept_share(acc_in, acc_out, ways) -> float``: the share of its above-chance accuracy a method keeps out
    of distribution, ``(acc_out - 1/ways) / (acc_in - 1/ways)``, accuracies as fractions in [0, 1]."""
    name = "check_kept_share"
    cases = [(0.976, 0.336, 5), (0.90, 0.90, 2), (0.60, 0.70, 5), (0.95, 0.30, 20), (0.99, 0.5, 2)]
    for acc_in, acc_out, ways in cases:
        want = (acc_out - 1 / ways) / (acc_in - 1 / ways)
        result = run_student(name, kept_share, acc_in, acc_out, ways)
        try:
            got = float(result)
        except (TypeError, ValueError):
            fail(name, f"return one number, got {result!r}")
        if abs(got - want) < 1e-9:
            continue
        fail_if(name, abs(got - acc_out / acc_in) < 1e-9,
                "subtract chance (1/ways) from both accuracies: a method at chance keeps nothing, and "
                "acc_out / acc_in would give it credit for guessing")
        fail_if(name, abs(got - (acc_in - 1 / ways) / (acc_out - 1 / ways)) < 1e-9,
                "in and out are swapped: divide what is kept OUT of distribution by what there was IN it")
        fail_if(name, abs(got - (acc_out - 0.5) / (acc_in - 0.5)) < 1e-9 and ways != 2,
                "chance is 1/ways, not 1/2: with 5 classes, guessing gets 20 %")
        fail_if(name, abs(got - (acc_out - acc_in)) < 1e-9 or abs(got - (acc_in - acc_out)) < 1e-9,
                "that is a difference of accuracies; the share is a RATIO of above-chance accuracies")
        fail_if(name, abs(got - 100 * want) < 1e-6,
                "return a fraction (1.0 = everything kept), not a percentage")
        fail(name, f"acc_in={acc_in}, acc_out={acc_out}, {ways}-way: expected {want:.4f}, got {got:.4f}")
    passed(name, len(cases))
