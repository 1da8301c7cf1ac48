"""course_lib.models: Conv4 and MLP shapes and sizes."""

from __future__ import annotations

import pytest
import torch

from course_lib.models import MLP, Conv4, count_parameters


def test_conv4_embeds_28px_images_in_64_dimensions():
    """Conv4() on [B,1,28,28] gives [B,64] (28 -> 14 -> 7 -> 3 -> 1 pixels)."""
    model = Conv4().eval()
    assert model.embedding_dim == 64
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    assert out.shape == (3, 64)
    assert model.head is None
    torch.testing.assert_close(out, model.embed(x))


def test_conv4_with_head_gives_logits():
    """Conv4(num_classes=n) returns [B, n] logits, on top of the 64-dim embedding."""
    model = Conv4(num_classes=7).eval()
    x = torch.rand(2, 1, 28, 28)
    assert model(x).shape == (2, 7)
    assert model.embed(x).shape == (2, 64)
    torch.testing.assert_close(model(x), model.head(model.embed(x)))


def test_conv4_84px_rgb_embedding_is_64_x_5_x_5():
    """On 84x84 RGB (miniImageNet size) the embedding has 64*5*5 = 1600 dimensions."""
    model = Conv4(in_channels=3, image_size=84, num_classes=5)
    assert model.embedding_dim == 64 * 5 * 5
    x = torch.rand(2, 3, 84, 84)
    assert model.embed(x).shape == (2, 1600)
    assert model(x).shape == (2, 5)


@pytest.mark.parametrize("size", [8, 15])
def test_conv4_rejects_images_that_vanish(size):
    """Images smaller than 16x16 pool away to nothing: ValueError."""
    with pytest.raises(ValueError, match="16x16"):
        Conv4(image_size=size)


def test_conv4_accepts_exactly_16px():
    """16x16 is the smallest size that leaves one pixel after four poolings."""
    model = Conv4(image_size=16, hidden=4)
    assert model.embedding_dim == 4
    assert model(torch.rand(1, 1, 16, 16)).shape == (1, 4)


def test_conv4_parameter_count_hand_computed():
    """Conv4(hidden=64): per block 3x3 conv weights + biases + batch-norm scale and shift."""
    block1 = 1 * 64 * 3 * 3 + 64 + 2 * 64  # 768
    block = 64 * 64 * 3 * 3 + 64 + 2 * 64  # 37056
    expected = block1 + 3 * block
    assert expected == 111_936
    assert count_parameters(Conv4(hidden=64)) == expected
    assert count_parameters(Conv4(hidden=64, num_classes=5)) == expected + 64 * 5 + 5


def test_count_parameters_ignores_frozen_parameters():
    """Only trainable parameters are counted."""
    model = MLP(4, (3,), 2)  # 4*3+3 + 3*2+2 = 23
    assert count_parameters(model) == 23
    model[1].weight.requires_grad_(False)
    assert count_parameters(model) == 23 - 12


def test_mlp_shapes_and_layers():
    """MLP flattens its input and maps in_features through the hidden sizes to out_features."""
    model = MLP(28 * 28, (32, 16), 5)
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 5)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(784, 32), (32, 16), (16, 5)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in model) == 2


def test_mlp_without_hidden_layers_is_linear():
    """MLP(in, (), out) is a single linear map."""
    model = MLP(6, (), 2)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and (linears[0].in_features, linears[0].out_features) == (6, 2)
    x = torch.rand(3, 6)
    torch.testing.assert_close(model(x), linears[0](x))
