"""Notebook 08's exercise checks accept correct solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.teaching.checks import nb08 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

# ---------------------------------------------------------------- the notebook's reference solutions

NOTEBOOK = "08_gpicl"  # defined from its source, each with the others it calls and its INPUT_DIM, NUM_CLASSES

make_task_batch = notebook_solution(NOTEBOOK, "make_task_batch")
build_tokens = notebook_solution(NOTEBOOK, "build_tokens")
accuracy_by_position = notebook_solution(NOTEBOOK, "accuracy_by_position")
make_task = notebook_solution(NOTEBOOK, "make_task")
sample_sequences = notebook_solution(NOTEBOOK, "sample_sequences")
position_study = notebook_solution(NOTEBOOK, "position_study")
INPUT_DIM, NUM_CLASSES = (sample_sequences.__globals__[name] for name in ("INPUT_DIM", "NUM_CLASSES"))


def run_all(task_batch=make_task_batch, tokens=build_tokens, accuracy=accuracy_by_position, task=make_task,
            sequences=sample_sequences, study=position_study):
    checks.check_task_batch(task_batch)
    checks.check_tokens(tokens)
    checks.check_accuracy_by_position(accuracy)
    checks.check_make_task(task)
    checks.check_sample_sequences(sequences, task)
    checks.check_position_study(study)


def test_reference_solutions_pass(capsys):
    run_all()
    out = capsys.readouterr().out
    for name in ("check_task_batch", "check_tokens", "check_accuracy_by_position", "check_make_task",
                 "check_sample_sequences", "check_position_study"):
        assert f"✓ {name}" in out


# ---------------------------------------------------------------- other correct solutions


def make_task_numpy(seed, data_dim, input_dim, num_classes):
    """Another generator, another distribution of draws: still a valid task of its seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    W = torch.from_numpy(rng.normal(0.0, 1.0 / np.sqrt(data_dim), (data_dim, input_dim))).float()
    return W, torch.from_numpy(rng.permutation(num_classes))


def sample_sequences_vectorised(inputs, classes, task_seeds, seq_len, generator):
    tasks = [make_task_numpy(int(s), inputs.shape[1], INPUT_DIM, NUM_CLASSES) for s in task_seeds]
    W = torch.stack([w for w, _ in tasks])
    perm = torch.stack([p for _, p in tasks])
    rows = torch.randint(len(inputs), (len(task_seeds), seq_len), generator=generator)
    return torch.bmm(inputs[rows], W), perm.gather(1, classes[rows])


def position_study_one_call(learner, sample_tokens, pool_seeds, sequences, generator):
    """Seen and unseen sequences in one batch; unseen seeds drawn at random outside the pool."""
    seen = pool_seeds[torch.randperm(len(pool_seeds), generator=generator)].repeat(sequences)[:sequences]
    candidates = torch.randint(0, 2**31, (4 * sequences,), generator=generator)
    unseen = candidates[~torch.isin(candidates, pool_seeds)][:sequences]
    tokens, targets = sample_tokens(torch.cat([seen, unseen]))
    correct = (learner(tokens).argmax(-1) == targets).double()
    return correct[:sequences].sum(0) / sequences, correct[sequences:].mean(0)


def test_alternative_correct_solutions_pass():
    run_all(task_batch=lambda x, c, W, p: (torch.einsum("ld,dk->lk", x, W), p.index_select(0, c)),
            tokens=lambda x, y, C: torch.cat([x, F.pad(F.one_hot(y, C).float()[:, :-1], (0, 0, 1, 0))], -1),
            accuracy=lambda l, t: (l.softmax(-1).argmax(-1) == t).double().sum(0) / len(t),
            task=make_task_numpy, sequences=sample_sequences_vectorised, study=position_study_one_call)


# ---------------------------------------------------------------- typical mistakes


def rolled_tokens(inputs, labels, num_classes):
    return torch.cat([inputs, F.one_hot(labels.roll(1, dims=1), num_classes).float()], -1)


def make_task_global_rng(seed, data_dim, input_dim, num_classes):
    return torch.randn(data_dim, input_dim) / math.sqrt(data_dim), torch.randperm(num_classes)


def make_task_fixed_seed(seed, data_dim, input_dim, num_classes):
    return make_task(0, data_dim, input_dim, num_classes)


def make_task_shared_perm(seed, data_dim, input_dim, num_classes):
    return make_task(seed, data_dim, input_dim, num_classes)[0], make_task(0, data_dim, input_dim, num_classes)[1]


def make_task_unscaled(seed, data_dim, input_dim, num_classes):
    W, perm = make_task(seed, data_dim, input_dim, num_classes)
    return W * math.sqrt(data_dim), perm


def make_task_variance_as_std(seed, data_dim, input_dim, num_classes):
    W, perm = make_task(seed, data_dim, input_dim, num_classes)
    return W / math.sqrt(data_dim), perm


def make_task_randint_labels(seed, data_dim, input_dim, num_classes):
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(data_dim, input_dim, generator=generator) / math.sqrt(data_dim)
    return W, torch.randint(num_classes, (num_classes,), generator=generator)


def make_task_uniform(seed, data_dim, input_dim, num_classes):
    generator = torch.Generator().manual_seed(seed)
    W = torch.rand(data_dim, input_dim, generator=generator) / math.sqrt(data_dim)
    return W, torch.randperm(num_classes, generator=generator)


def sequences_projection_per_example(inputs, classes, task_seeds, seq_len, generator):
    x, y = [], []
    for seed in task_seeds.tolist():
        _, perm = make_task(seed, inputs.shape[1], INPUT_DIM, NUM_CLASSES)
        rows = torch.randint(len(inputs), (seq_len,), generator=generator)
        W = torch.randn(seq_len, inputs.shape[1], INPUT_DIM, generator=generator) / math.sqrt(inputs.shape[1])
        x.append(torch.einsum("td,tdk->tk", inputs[rows], W))
        y.append(perm[classes[rows]])
    return torch.stack(x), torch.stack(y)


def sequences_permutation_per_example(inputs, classes, task_seeds, seq_len, generator):
    x, y = [], []
    for seed in task_seeds.tolist():
        W, _ = make_task(seed, inputs.shape[1], INPUT_DIM, NUM_CLASSES)
        rows = torch.randint(len(inputs), (seq_len,), generator=generator)
        x.append(inputs[rows] @ W)
        y.append(torch.stack([torch.randperm(NUM_CLASSES, generator=generator)[c] for c in classes[rows]]))
    return torch.stack(x), torch.stack(y)


def sequences_index_as_seed(inputs, classes, task_seeds, seq_len, generator):
    return sample_sequences(inputs, classes, torch.arange(len(task_seeds)), seq_len, generator)


def sequences_first_task(inputs, classes, task_seeds, seq_len, generator):
    return sample_sequences(inputs, classes, task_seeds[:1].expand(len(task_seeds)), seq_len, generator)


def sequences_unpermuted(inputs, classes, task_seeds, seq_len, generator):
    x, y = [], []
    for seed in task_seeds.tolist():
        W, perm = make_task(seed, inputs.shape[1], INPUT_DIM, NUM_CLASSES)
        rows = torch.randint(len(inputs), (seq_len,), generator=generator)
        x.append(inputs[rows] @ W)
        y.append(classes[rows])
    return torch.stack(x), torch.stack(y)


def sequences_global_rng(inputs, classes, task_seeds, seq_len, generator):
    return sample_sequences(inputs, classes, task_seeds, seq_len, torch.Generator().manual_seed(
        int(torch.randint(10**6, (1,)))))


def sequences_in_order(inputs, classes, task_seeds, seq_len, generator):
    x, y = [], []
    for seed in task_seeds.tolist():
        W, perm = make_task(seed, inputs.shape[1], INPUT_DIM, NUM_CLASSES)
        x.append(inputs[:seq_len] @ W)
        y.append(perm[classes[:seq_len]])
    return torch.stack(x), torch.stack(y)


def study_unseen_from_pool(learner, sample_tokens, pool_seeds, sequences, generator):
    seen = pool_seeds[torch.randint(len(pool_seeds), (sequences,), generator=generator)]
    unseen = pool_seeds[torch.randint(len(pool_seeds), (sequences,), generator=generator)]
    return (accuracy_by_position(*_run(learner, sample_tokens, seen)),
            accuracy_by_position(*_run(learner, sample_tokens, unseen)))


def _run(learner, sample_tokens, seeds):
    tokens, targets = sample_tokens(seeds)
    return learner(tokens), targets


def study_unseen_after_pool_size(learner, sample_tokens, pool_seeds, sequences, generator):
    """Assumes the pool is 0..M-1: len(pool) + i may be a pool seed."""
    seen = pool_seeds[torch.randint(len(pool_seeds), (sequences,), generator=generator)]
    unseen = len(pool_seeds) + torch.arange(sequences)
    return (accuracy_by_position(*_run(learner, sample_tokens, seen)),
            accuracy_by_position(*_run(learner, sample_tokens, unseen)))


def study_wrong_axis(learner, sample_tokens, pool_seeds, sequences, generator):
    seen = pool_seeds[torch.randint(len(pool_seeds), (sequences,), generator=generator)]
    unseen = int(pool_seeds.max()) + 1 + torch.arange(sequences)
    return tuple((lambda l, t: (l.argmax(-1) == t).float().mean(1))(*_run(learner, sample_tokens, s))
                 for s in (seen, unseen))


def study_swapped(learner, sample_tokens, pool_seeds, sequences, generator):
    seen, unseen = position_study(learner, sample_tokens, pool_seeds, sequences, generator)
    return unseen, seen


def study_one_unseen_task(learner, sample_tokens, pool_seeds, sequences, generator):
    seen = pool_seeds[torch.randint(len(pool_seeds), (sequences,), generator=generator)]
    unseen = torch.full((sequences,), int(pool_seeds.max()) + 1)
    return (accuracy_by_position(*_run(learner, sample_tokens, seen)),
            accuracy_by_position(*_run(learner, sample_tokens, unseen)))


def study_one_seen_task(learner, sample_tokens, pool_seeds, sequences, generator):
    seen = pool_seeds[:1].expand(sequences)
    unseen = int(pool_seeds.max()) + 1 + torch.arange(sequences)
    return (accuracy_by_position(*_run(learner, sample_tokens, seen)),
            accuracy_by_position(*_run(learner, sample_tokens, unseen)))


def study_whole_pool_only(learner, sample_tokens, pool_seeds, sequences, generator):
    unseen = int(pool_seeds.max()) + 1 + torch.arange(sequences)
    return (accuracy_by_position(*_run(learner, sample_tokens, pool_seeds)),
            accuracy_by_position(*_run(learner, sample_tokens, unseen)))


def study_percent(learner, sample_tokens, pool_seeds, sequences, generator):
    return tuple(100 * c for c in position_study(learner, sample_tokens, pool_seeds, sequences, generator))


WRONG = [
    # (check, wrong function, words the message must contain)
    ("check_task_batch", lambda x, c, W, p: (x, p[c]), "not projected"),
    ("check_task_batch", lambda x, c, W, p: (x @ W.T if W.shape[0] == W.shape[1] else x @ W, p[c]), "transposed"),
    ("check_task_batch", lambda x, c, W, p: (x @ W, c), "not permuted"),
    ("check_task_batch", lambda x, c, W, p: (x @ W, p.argsort()[c]), "inverse permutation"),
    ("check_task_batch", lambda x, c, W, p: x @ W, "two things"),
    ("check_tokens", lambda x, y, C: torch.cat([x, F.one_hot(y, C).float()], -1), "answer it must predict"),
    ("check_tokens", rolled_tokens, "wraps around"),
    ("check_tokens", lambda x, y, C: torch.cat([x, F.pad(F.one_hot(y[:, 1:], C).float(), (0, 0, 0, 1))], -1),
     "wrong way"),
    ("check_tokens", lambda x, y, C: torch.cat([x, F.pad(F.one_hot(y[:-1], C).float(), (0, 0, 0, 0, 1, 0))], -1),
     "batch axis"),
    ("check_tokens", lambda x, y, C: torch.cat([x, F.one_hot(F.pad(y[:, :-1], (1, 0)), C).float()], -1),
     "class 0"),
    ("check_tokens", lambda x, y, C: torch.cat([x, F.pad(F.one_hot(y[:, :-1]).float(), (0, 0, 1, 0))], -1),
     "guessed the number of classes"),
    ("check_tokens", lambda x, y, C: torch.cat([x, F.pad(y[:, :-1, None].float(), (0, 0, 1, 0))], -1), "one-hot"),
    ("check_tokens", lambda x, y, C: torch.cat([F.pad(F.one_hot(y[:, :-1], C).float(), (0, 0, 1, 0)), x], -1),
     "wrong order"),
    ("check_tokens", lambda x, y, C: torch.cat(
        [x, F.pad(F.one_hot(y[:, :-1], C).float(), (0, 0, 1, 0)), F.pad(x[:, :-1], (0, 0, 1, 0))], -1),
     "appends x_(t-1) itself"),
    ("check_accuracy_by_position", lambda l, t: (l.argmax(-1) == t).float().mean(1), "averaged over positions"),
    ("check_accuracy_by_position", lambda l, t: 100 * (l.argmax(-1) == t).float().mean(0), "percentages"),
    ("check_accuracy_by_position", lambda l, t: (l.argmax(-1) == t).float().sum(0), "counts"),
    ("check_accuracy_by_position",
     lambda l, t: (l.argmax(-1) == t).float().mean(0).cumsum(0) / torch.arange(1, t.shape[1] + 1), "running"),
    ("check_accuracy_by_position",
     lambda l, t: l.softmax(-1).gather(2, t.unsqueeze(-1)).squeeze(-1).mean(0), "probabilities"),
    ("check_accuracy_by_position", lambda l, t: (l.argmax(-1) == t).float(), "shape"),
    ("check_make_task", make_task_global_rng, "same seed gave a different task"),
    ("check_make_task", make_task_fixed_seed, "different seeds gave the same W"),
    ("check_make_task", make_task_shared_perm, "same permutation"),
    ("check_make_task", lambda s, d, k, C: (make_task(s, d, k, C)[0], torch.arange(C)), "not permuted"),
    ("check_make_task", make_task_randint_labels, "not a permutation"),
    ("check_make_task", make_task_unscaled, "standard deviation 1:"),
    ("check_make_task", make_task_variance_as_std, "standard deviation 1/data_dim"),
    ("check_make_task", make_task_uniform, "mean 0"),
    ("check_make_task", lambda s, d, k, C: (make_task(s, d, k, C)[0].T, make_task(s, d, k, C)[1]), "x @ W needs W"),
    ("check_sample_sequences", sequences_projection_per_example, "one projection per task, not per example"),
    ("check_sample_sequences", sequences_permutation_per_example, "one permutation per task, not per example"),
    ("check_sample_sequences", sequences_index_as_seed, "not b"),
    ("check_sample_sequences", sequences_first_task, "task_seeds[0]"),
    ("check_sample_sequences", sequences_unpermuted, "original classes"),
    ("check_sample_sequences", sequences_global_rng, "same generator seed gave other examples"),
    ("check_sample_sequences", sequences_in_order, "at random"),
    ("check_sample_sequences", lambda i, c, s, T, g: sample_sequences(i, c, s, T, g)[0], "two things"),
    ("check_position_study", study_unseen_from_pool, "drawn from the training seed set"),
    ("check_position_study", study_unseen_after_pool_size, "unseen tasks are in the training pool"),
    ("check_position_study", study_wrong_axis, "averaged over positions"),
    ("check_position_study", study_swapped, "swapped"),
    ("check_position_study", study_one_unseen_task, "repeat a few tasks"),
    ("check_position_study", study_one_seen_task, "draw the seen seeds at random"),
    ("check_position_study", study_whole_pool_only, "sequences in all"),
    ("check_position_study", study_percent, "percent"),
]


@pytest.mark.parametrize("check,wrong,words", WRONG, ids=[f"{c}-{w}" for c, _, w in WRONG])
def test_typical_mistakes_are_named(check, wrong, words):
    if check == "check_sample_sequences":
        with pytest.raises(ExerciseError) as error:
            checks.check_sample_sequences(wrong, make_task)
        assert words in str(error.value) and str(error.value).startswith(check), str(error.value)
    else:
        assert_rejected_in_plain_words(checks, check, wrong, words)


def test_a_crash_in_the_students_code_is_reported_with_its_error():
    def broken(x, classes, W, perm):
        raise IndexError("index 9 is out of bounds")

    with pytest.raises(ExerciseError, match="raised IndexError"):
        checks.check_task_batch(broken)


def test_placeholders_are_not_hidden():
    assert_unfinished_exercises_surface(checks, "check_task_batch", "check_tokens", "check_accuracy_by_position",
                                        "check_make_task", "check_position_study")

    def unfinished(*args):
        raise NotImplementedError("Exercise: write this part")

    with pytest.raises(NotImplementedError):
        checks.check_sample_sequences(unfinished, make_task)
