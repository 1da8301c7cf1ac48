"""Santoro et al. (2016)'s memory-augmented neural network with least-recently-used access
(course_lib.sequence_learners.SantoroMANN, model key ``lrua``).

The memory equations are checked against a reference written here from the paper's equations, one slot
and one head at a time, from the model's weights only (not its methods)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from course_lib import cli, registry
from course_lib import sequence_learners as S
from course_lib.data import LabelledImages
from course_lib.episodes import Episode, EpisodeSampler
from course_lib.runs import plain_config, with_added_defaults


def _config(**changes) -> S.SequenceConfig:
    tiny = dict(model="lrua", ways=3, shots=2, embed=8, hidden=16, batch_size=4, memory_slots=6, memory_width=5,
                read_heads=2)
    return S.SequenceConfig(**{**tiny, **changes})


def _episode(ways=3, shots=2, queries=2, seed=0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(support_x=torch.rand(ways * shots, 1, 28, 28, generator=g),
                   support_y=torch.arange(ways).repeat_interleave(shots),
                   query_x=torch.rand(ways * queries, 1, 28, 28, generator=g),
                   query_y=torch.arange(ways).repeat_interleave(queries), classes=torch.arange(ways))


def _batch(sequences=2, **episode) -> S.LabelSequence:
    return S.stack_sequences([S.make_sequence(_episode(seed=s, **episode), torch.Generator().manual_seed(s))
                              for s in range(sequences)])


def _squares(classes=8, per_class=5) -> LabelledImages:
    """Each class a bright 7x7 square at its own place, on faint noise: an easy image to match."""
    g = torch.Generator().manual_seed(0)
    images = 0.1 * torch.rand(classes * per_class, 1, 28, 28, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    for c in range(classes):
        row, column = divmod(c, 4)
        images[labels == c, 0, 7 * row:7 * row + 7, 7 * column:7 * column + 7] = 1.0
    return LabelledImages(images=images, labels=labels, class_names=[f"c{c}" for c in range(classes)],
                          class_groups=["g"] * classes, name="squares")


# ---------------- The paper's equations, written out


def reference_steps(model, images, label_inputs, zero_least_used=True):
    """Santoro et al.'s LRUA equations for every step of every sequence, in float64, with the model's weights:
    returns logits [B, L, ways], memories [B, L, N, W] and usages [B, L, N] after each step.
    ``zero_least_used=False`` skips setting the least-used slot to zero before the write (a wrong model)."""
    c = model.config
    n, N, W, H = c.read_heads, c.memory_slots, c.memory_width, c.hidden
    P = {name: value.detach().double() for name, value in model.state_dict().items()}
    B, L = images.shape[:2]
    logits, memories, usages = torch.zeros(B, L, c.ways), torch.zeros(B, L, N, W), torch.zeros(B, L, N)
    logits, memories, usages = logits.double(), memories.double(), usages.double()
    for b in range(B):
        h, cell = torch.zeros(H).double(), torch.zeros(H).double()
        reads = [torch.zeros(W).double() for _ in range(n)]
        read_weights = [torch.zeros(N).double() for _ in range(n)]
        usage, memory = torch.zeros(N).double(), torch.zeros(N, W).double()
        for t in range(L):
            # controller: an LSTM (PyTorch's gate order i, f, g, o) on [x_t, onehot(y_{t-1}), r_{t-1}]
            x = torch.cat([images[b, t].flatten().double(), label_inputs[b, t].double(), *reads])
            z = (P["controller.weight_ih_l0"] @ x + P["controller.bias_ih_l0"]
                 + P["controller.weight_hh_l0"] @ h + P["controller.bias_hh_l0"])
            i, f, g, o = z.chunk(4)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(cell)
            keys = [torch.tanh(P["key.weight"][j * W:(j + 1) * W] @ h + P["key.bias"][j * W:(j + 1) * W])
                    for j in range(n)]
            alphas = [P["gate.weight"][j] @ h + P["gate.bias"][j] for j in range(n)]
            # least-used weights from the previous usage: the n smallest (ties: the lower index first)
            ranked = sorted(range(N), key=lambda slot: (usage[slot].item(), slot))
            least_used = torch.zeros(N).double()
            least_used[ranked[:n]] = 1.0
            write_weights = [torch.sigmoid(alphas[j]) * read_weights[j] + (1 - torch.sigmoid(alphas[j])) * least_used
                             for j in range(n)]
            memory = memory.clone()
            if zero_least_used:
                memory[ranked[0]] = 0.0
            for slot in range(N):
                for j in range(n):
                    memory[slot] = memory[slot] + write_weights[j][slot] * keys[j]

            def cosine(a, m):
                return 0.0 if m.norm() == 0 else float(a @ m / (a.norm() * m.norm()))

            read_weights = [torch.tensor([cosine(keys[j], memory[slot]) for slot in range(N)]).double().softmax(0)
                            for j in range(n)]
            reads = [sum(read_weights[j][slot] * memory[slot] for slot in range(N)) for j in range(n)]
            usage = c.usage_decay * usage + sum(read_weights) + sum(write_weights)
            logits[b, t] = P["head.weight"] @ torch.cat([h, *reads]) + P["head.bias"]
            memories[b, t], usages[b, t] = memory, usage
    return logits, memories, usages


def test_the_model_follows_the_papers_equations_step_by_step():
    """Six steps of 2 sequences, 2 heads writing to 5 slots: the memory fills after 3 steps and slots are reused."""
    torch.manual_seed(0)
    model = S.build(_config(ways=2, shots=2, encoder="pixels", memory_slots=5, memory_width=3, hidden=6)).double()
    batch = _batch(ways=2, shots=2, queries=1)
    images, labels = batch.images.double(), batch.label_inputs.double()
    want_logits, want_memories, want_usages = reference_steps(model, images, labels)
    state = model.initial_state(2)
    for t in range(images.shape[1]):
        state = model.step(torch.cat([images[:, t].flatten(1), labels[:, t]], -1), state)
        assert torch.allclose(state.memory, want_memories[:, t], atol=1e-10), t
        assert torch.allclose(state.usage, want_usages[:, t], atol=1e-10), t
    assert torch.allclose(model(images, labels), want_logits, atol=1e-10)
    # the check can fail: without zeroing the least-used slot the reference gives other logits
    wrong, _, _ = reference_steps(model, images, labels, zero_least_used=False)
    assert not torch.allclose(wrong, want_logits, atol=1e-4)


def test_least_used_weights_mark_the_n_least_used_slots():
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.2, 0.3], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert S.least_used_weights(usage, 1).tolist() == [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert S.least_used_weights(usage, 2).tolist() == [[0, 1, 0, 1, 0], [1, 1, 0, 0, 0]]  # ties: lower index
    assert S.least_used_weights(usage, 3).tolist() == [[0, 1, 0, 1, 1], [1, 1, 1, 0, 0]]
    # without ties, the paper's rule: 1 where the usage is at most the n-th smallest
    random_usage = torch.rand(4, 10, generator=torch.Generator().manual_seed(0))
    nth_smallest = random_usage.kthvalue(3, dim=1, keepdim=True).values
    assert torch.equal(S.least_used_weights(random_usage, 3), (random_usage <= nth_smallest).float())


@pytest.mark.parametrize("gate_bias", [40.0, -40.0])
def test_the_gate_writes_to_the_last_read_slot_or_to_the_least_used_one(gate_bias):
    """sigmoid(alpha) -> 1: the key is added to the slot read last step; -> 0: to the least-used slot.
    Either way the least-used slot is first set to zero."""
    torch.manual_seed(0)
    model = S.build(_config(encoder="pixels", read_heads=1, memory_slots=6, memory_width=4))
    with torch.no_grad():
        model.gate.weight.zero_()
        model.gate.bias.fill_(gate_bias)
    last_read, least_used = 1, 4
    state = model.initial_state(1)._replace(
        read_weights=F.one_hot(torch.tensor([[last_read]]), 6).float(),
        usage=torch.tensor([[0.5, 0.9, 0.2, 0.7, 0.05, 0.3]]),
        memory=torch.randn(1, 6, 4))
    e = torch.rand(1, 28 * 28 + 3)
    new = model.step(e, state)
    h = new.controller[0][-1]
    key = torch.tanh(model.key(h))[0]
    assert key.abs().min() > 0
    written = last_read if gate_bias > 0 else least_used
    want = state.memory[0].clone()
    want[least_used] = 0.0
    want[written] += key
    assert torch.allclose(new.memory[0], want, atol=1e-6)


def test_shapes_learned_variables_and_no_memory_among_the_parameters():
    config = _config(ways=3, shots=2)
    model = S.build(config)
    assert isinstance(model, S.SantoroMANN) and S.LABELS["lrua"] == "MANN (Santoro et al., LRU access)"
    batch = _batch()
    assert model(batch.images, batch.label_inputs).shape == (2, 12, 3)
    # LSTM h and c, n read vectors, n read weightings, the usage, the memory
    want = 2 * 16 + 2 * 5 + 2 * 6 + 6 + 6 * 5
    assert model.learned_variables(12) == want == model.learned_variables(100)
    assert S.build(_config(layers=2)).learned_variables(12) == want + 2 * 16
    assert not any(p.shape[-2:] == (6, 5) for p in model.parameters())  # the memory is state, not a weight
    paper = S.SequenceConfig(model="lrua")
    assert (paper.memory_slots, paper.memory_width, paper.read_heads) == (128, 40, 4)


@pytest.mark.parametrize("encoder, layers", [("conv", 1), ("pixels", 2)])
def test_every_parameter_gets_a_gradient(encoder, layers):
    torch.manual_seed(0)
    model = S.build(_config(encoder=encoder, layers=layers))
    batch = _batch()
    logits = model(batch.images, batch.label_inputs)
    # causality for every model, lrua included: tests/test_sequence_learners.py
    F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert encoder == "pixels" or list(model.encoder.parameters())  # the conv encoder is learned too


def test_the_memory_starts_empty_for_every_sequence():
    torch.manual_seed(0)
    model = S.build(_config()).eval()
    batch = _batch(sequences=3)
    together = model(batch.images, batch.label_inputs)
    alone = model(batch.images[2:], batch.label_inputs[2:])
    again = model(batch.images[2:], batch.label_inputs[2:])  # after other sequences: nothing carried over
    assert torch.allclose(together[2:], alone, atol=1e-6) and torch.equal(alone, again)
    state = model.initial_state(3)
    assert all(not tensor.any() for tensor in (*state.controller, state.read, state.read_weights, state.usage,
                                               state.memory))


def test_a_short_training_learns_to_match_a_query_to_its_support_image():
    """500 steps on bright squares, each episode's labels drawn anew: the held-out episodes' queries go from
    chance to mostly right, which only reading the support set (the memory) can do."""
    torch.manual_seed(0)
    config = S.SequenceConfig(model="lrua", encoder="pixels", ways=2, shots=1, hidden=32, memory_slots=16,
                              memory_width=8, read_heads=2, batch_size=16, meta_lr=3e-3, steps=500)
    model, data = S.build(config), _squares()
    held_out = S.sample_sequences(EpisodeSampler(data, 2, 1, 1), 200, torch.Generator().manual_seed(99))
    with torch.no_grad():
        _, before = S.sequence_loss(model, held_out, "queries")
    S.train(model, config, data, progress=False)
    with torch.no_grad():
        _, after = S.sequence_loss(model, held_out, "queries")
    assert before["query_accuracy"] < 0.65 and before["loss"] > 0.6
    assert after["query_accuracy"] > 0.8 and after["loss"] < 0.45


# ---------------- Options and the command line


@pytest.mark.parametrize("options, match", [
    (["--model", "lrua", "--read-heads", "5", "--memory-slots", "4"], "read_heads .* at most memory_slots"),
    (["--model", "lrua", "--memory-width", "0"], "memory_width must be >= 1"),
    (["--model", "lrua", "--usage-decay", "1.5"], r"usage_decay must be in \[0, 1\]"),
])
def test_bad_memory_options_are_usage_errors_before_anything_is_loaded(tmp_path, monkeypatch, options, match):
    monkeypatch.setattr(S, "load_data", lambda *a, **k: pytest.fail("data was loaded"))
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "sequence", "--out", str(tmp_path / "run"), *options])
    assert not (tmp_path / "run").exists()


def test_the_new_fields_do_not_change_the_other_models_or_the_runs():
    lrua_runs = [run.folder for run in S.RUNS if "--model" in run.options
                 and run.options[run.options.index("--model") + 1] == "lrua"]
    assert lrua_runs == [f"data/black_box/lrua_{ways}way_1shot" for ways in (2, 3, 4)]  # only its own folders
    # a run stored before these fields existed gets their defaults, and still matches its config
    config = S.SequenceConfig(model="lstm", encoder="pixels", layers=2)
    old_record = {field: value for field, value in plain_config(config).items()
                  if field not in ("memory_slots", "memory_width", "read_heads", "usage_decay")}
    assert with_added_defaults(old_record, config) == plain_config(config)


TINY = ["--model", "lrua", "--embed", "8", "--hidden", "16", "--memory-slots", "8", "--memory-width", "4",
        "--read-heads", "2", "--batch-size", "4", "--ways", "2", "--shots", "1", "--test-episodes", "3",
        "--no-progress", "--device", "cpu"]


def test_command_line_resume_is_exact(tmp_path, monkeypatch):
    """4 steps in one go == 2 steps + --resume to 4."""
    monkeypatch.setattr(S, "load_data", lambda config, smoke=False: {"train": _squares(), "test": _squares()})
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    cli.main(["train", "sequence", "--out", str(straight), "--steps", "4", *TINY])
    cli.main(["train", "sequence", "--out", str(halves), "--steps", "2", *TINY])
    cli.main(["train", "sequence", "--out", str(halves), "--steps", "4", "--resume", *TINY[-5:]])
    a, b = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (straight, halves))
    assert a["step"] == b["step"] == 4 and a["history"] == b["history"]
    assert all(torch.equal(t, b["state_dict"][k]) for k, t in a["state_dict"].items())
    assert json.loads((halves / "config.json").read_text())["config"]["read_heads"] == 2
    model, _ = registry.load(straight)
    assert isinstance(model, S.SantoroMANN) and model.config.memory_slots == 8
