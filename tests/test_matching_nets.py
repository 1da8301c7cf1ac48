"""Matching Networks: attention is a distribution over the support set, the
prediction is the attention mass per class, and training lowers the loss."""

from __future__ import annotations

import math

import torch

from course_lib import matching_nets as mn
from course_lib import protonet


def test_attention_rows_sum_to_one_and_match_a_hand_computed_cosine_softmax():
    g = torch.Generator().manual_seed(0)
    z_q, z_s = torch.randn(4, 6, generator=g), torch.randn(5, 6, generator=g)
    a = mn.attention(z_q, z_s)
    torch.testing.assert_close(a.sum(1), torch.ones(4))
    assert (a >= 0).all()
    q, s = z_q[2].tolist(), z_s.tolist()
    norm = lambda v: math.sqrt(sum(x * x for x in v))  # noqa: E731
    cos = [sum(x * y for x, y in zip(q, v)) / (norm(q) * norm(v)) for v in s]
    expected = [math.exp(c) / sum(math.exp(d) for d in cos) for c in cos]
    torch.testing.assert_close(a[2], torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_label_probabilities_are_the_attention_mass_per_class():
    a = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    p = mn.label_probabilities(a, torch.tensor([0, 1, 0, 2]), ways=3)
    torch.testing.assert_close(p, torch.tensor([[0.4, 0.2, 0.4]]))


def test_model_outputs_log_probabilities_and_attention_sums_to_one():
    torch.manual_seed(0)
    model = mn.MatchingNet(mn.MatchingNetConfig(hidden=8, channels_last=False)).eval()
    support_x, support_y, query_x = torch.rand(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(5, 1, 28, 28)
    log_p = model.predict(support_x, support_y, query_x)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(5))
    with torch.no_grad():
        torch.testing.assert_close(model.attention(support_x, query_x).sum(1), torch.ones(5))
    # a query embedded exactly like a support example, with a sharp attention, gets that example's label
    z_s = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    a = mn.attention(z_s[[3]], z_s, temperature=1e-3)
    assert mn.label_probabilities(a, support_y, 3).argmax().item() == 1

def test_episodic_training_lowers_the_loss():
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(6, 1, 1, 28, 28, generator=g)
    images = (patterns + 0.3 * torch.rand(6, 5, 1, 28, 28, generator=g)).clamp(0, 1).reshape(-1, 1, 28, 28)
    from course_lib.data import LabelledImages

    data = LabelledImages(images, torch.arange(6).repeat_interleave(5), [str(i) for i in range(6)])
    config = mn.MatchingNetConfig(hidden=8, ways=3, shots=1, queries=3, steps=30, channels_last=False,
                                  temperature=0.1)
    torch.manual_seed(0)
    history = protonet.train(mn.MatchingNet(config), config, data, loss_fn=mn.episode_loss, progress=False)
    losses = history["loss"][1]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
