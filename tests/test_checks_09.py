"""The exercise checks of notebook 09 (and its build-it) reject typical mistakes with the right message and accept
correct solutions, the reference and others."""

from __future__ import annotations

import math
import types
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from course_lib import episodes, models, protonet, runs
from course_lib.teaching.checks import nb09 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

NOTEBOOK = "09_benchmark"


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


# Exercise 3: the paired difference


def paired_reference(acc_a, acc_b):
    from course_lib.evaluation import mean_confidence_interval

    return mean_confidence_interval(torch.tensor(acc_a, dtype=torch.float64) - torch.tensor(acc_b, dtype=torch.float64))


def paired_by_hand(acc_a, acc_b):
    """An alternative: the t quantile from scipy, the differences in a plain loop."""
    from scipy import stats

    d = [a - b for a, b in zip(acc_a, acc_b)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    return mean, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def _cells(acc_a, acc_b):
    from course_lib.evaluation import mean_confidence_interval

    return mean_confidence_interval(torch.tensor(acc_a)), mean_confidence_interval(torch.tensor(acc_b))


def paired_independent(acc_a, acc_b):
    (ma, ca), (mb, cb) = _cells(acc_a, acc_b)
    return ma - mb, math.hypot(ca, cb)


def paired_summed(acc_a, acc_b):
    (ma, ca), (mb, cb) = _cells(acc_a, acc_b)
    return ma - mb, ca + cb


def paired_sorted(acc_a, acc_b):
    return paired_reference(sorted(acc_a), sorted(acc_b))


def paired_normal(acc_a, acc_b):
    d = torch.tensor(acc_a, dtype=torch.float64) - torch.tensor(acc_b, dtype=torch.float64)
    return float(d.mean()), 1.96 * float(d.std()) / math.sqrt(len(d))


def paired_population_std(acc_a, acc_b):
    from course_lib.evaluation import t_95

    d = torch.tensor(acc_a, dtype=torch.float64) - torch.tensor(acc_b, dtype=torch.float64)
    return float(d.mean()), t_95(len(d)) * float(d.std(correction=0)) / math.sqrt(len(d))


def paired_standard_error(acc_a, acc_b):
    d = torch.tensor(acc_a, dtype=torch.float64) - torch.tensor(acc_b, dtype=torch.float64)
    return float(d.mean()), float(d.std()) / math.sqrt(len(d))


def paired_wrong_sign(acc_a, acc_b):
    return paired_reference(acc_b, acc_a)


def paired_percent(acc_a, acc_b):
    mean, ci = paired_reference(acc_a, acc_b)
    return 100 * mean, 100 * ci


WRONG_PAIRED = [
    (paired_independent, "DIFFERENT episodes"),
    (paired_summed, "paired"),
    (paired_sorted, "sorting breaks the pairs"),
    (paired_normal, "Student's t"),
    (paired_population_std, "n - 1"),
    (paired_standard_error, "standard error"),
    (paired_wrong_sign, "wrong sign"),
    (paired_percent, "percentages"),
]


@pytest.mark.parametrize("correct", [notebook_solution(NOTEBOOK, "paired_difference"), paired_reference,
                                     paired_by_hand])
def test_correct_paired_differences_pass(correct, capsys):
    checks.check_paired_difference(correct)
    assert "check_paired_difference: all 2 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,words", WRONG_PAIRED, ids=[w.__name__ for w, _ in WRONG_PAIRED])
def test_wrong_paired_differences_are_rejected_with_the_reason(wrong, words):
    assert_rejected_in_plain_words(checks, "check_paired_difference", wrong, words)


# The build-it, part 1: cosine scores


def cosine_reference(z_support, support_y, z_query, ways, scale):
    prototypes = torch.stack([z_support[support_y == k].mean(0) for k in range(ways)])
    return scale * F.normalize(z_query, dim=1) @ F.normalize(prototypes, dim=1).T


def cosine_one_hot_log_softmax(z_support, support_y, z_query, ways, scale):
    """An alternative: sums by a one-hot matrix (the length of a prototype does not matter to a cosine),
    the cosine by hand, log-probabilities (logits up to a constant per query)."""
    sums = F.one_hot(support_y, ways).to(z_support.dtype).T @ z_support
    cos = (z_query @ sums.T) / (z_query.norm(dim=1, keepdim=True) * sums.norm(dim=1)[None, :])
    return (scale * cos).log_softmax(-1)


def cosine_mean_of_units(z_support, support_y, z_query, ways, scale):
    """An alternative: the mean of the unit-length support embeddings."""
    return cosine_reference(F.normalize(z_support, dim=1), support_y, z_query, ways, scale)


def cosine_dot(z_support, support_y, z_query, ways, scale):
    prototypes = torch.stack([z_support[support_y == k].mean(0) for k in range(ways)])
    return scale * z_query @ prototypes.T


def cosine_no_scale(z_support, support_y, z_query, ways, scale):
    return cosine_reference(z_support, support_y, z_query, ways, 1.0)


def cosine_detached_scale(z_support, support_y, z_query, ways, scale):
    return cosine_reference(z_support, support_y, z_query, ways, scale.item())


def cosine_divided(z_support, support_y, z_query, ways, scale):
    return cosine_reference(z_support, support_y, z_query, ways, 1 / scale)


def cosine_distance(z_support, support_y, z_query, ways, scale):
    return scale * (1 - cosine_reference(z_support, support_y, z_query, ways, 1.0))


def cosine_batch_axis(z_support, support_y, z_query, ways, scale):
    prototypes = torch.stack([z_support[support_y == k].mean(0) for k in range(ways)])
    return scale * F.normalize(z_query, dim=0) @ F.normalize(prototypes, dim=1).T


def cosine_first_shot(z_support, support_y, z_query, ways, scale):
    firsts = torch.stack([z_support[support_y == k][0] for k in range(ways)])
    return scale * F.normalize(z_query, dim=1) @ F.normalize(firsts, dim=1).T


def cosine_query_prototypes(z_support, support_y, z_query, ways, scale):
    return cosine_reference(z_query[: len(z_support)], support_y, z_query, ways, scale)


def cosine_probabilities(z_support, support_y, z_query, ways, scale):
    return cosine_reference(z_support, support_y, z_query, ways, scale).softmax(-1)


WRONG_COSINES = [
    (cosine_dot, "compare directions"),
    (cosine_no_scale, "multiply the cosines by the scale"),
    (cosine_detached_scale, "left the graph"),
    (cosine_divided, "do not divide"),
    (cosine_distance, "not a distance"),
    (cosine_batch_axis, "not over the batch"),
    (cosine_first_shot, "averages all K"),
    (cosine_query_prototypes, "SUPPORT set"),
    (cosine_probabilities, "not probabilities"),
]


@pytest.mark.parametrize("correct", [notebook_solution(NOTEBOOK, "cosine_scores"), cosine_reference,
                                     cosine_one_hot_log_softmax, cosine_mean_of_units])
def test_correct_cosine_scores_pass(correct, capsys):
    checks.check_cosine_scores(correct)
    assert "check_cosine_scores: all 3 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,words", WRONG_COSINES, ids=[w.__name__ for w, _ in WRONG_COSINES])
def test_wrong_cosine_scores_are_rejected_with_the_reason(wrong, words):
    assert_rejected_in_plain_words(checks, "check_cosine_scores", wrong, words)


# The build-it, part 2: the trainer


@dataclass
class Config:  # the notebook's config, as the check uses it
    hidden: int = 32
    ways: int = 20
    shots: int = 5
    queries: int = 5
    steps: int = 400
    meta_lr: float = 1e-3
    seed: int = 0


def make_trainer(parameters=lambda model: model.parameters(), clear=True, support_loss=False, train_mode=True,
                 generator="step", optimizer_per_step=False, zero_after_backward=False):
    def trainer(model, config, data, device="cpu"):
        if train_mode:
            model.train()
        optimizer = torch.optim.Adam(parameters(model), lr=config.meta_lr)
        sampler = episodes.FastEpisodeSampler(data["train"], config.ways, config.shots, config.queries)
        once = torch.Generator().manual_seed(config.seed)

        def step(i):
            nonlocal optimizer
            chosen = {"step": lambda: episodes.step_generator(config.seed, i), "run": lambda: once,
                      "first": lambda: episodes.step_generator(config.seed, 0),
                      "no seed": lambda: episodes.step_generator(0, i)}[generator]()
            episode = sampler.sample(chosen)
            if support_loss:
                loss = F.cross_entropy(model(episode.support_x, episode.support_y, episode.support_x),
                                       episode.support_y)
            else:
                loss = F.cross_entropy(model(episode.support_x, episode.support_y, episode.query_x), episode.query_y)
            if optimizer_per_step:
                optimizer = torch.optim.Adam(parameters(model), lr=config.meta_lr)
            if clear and not zero_after_backward:
                optimizer.zero_grad()
            loss.backward()
            if zero_after_backward:
                optimizer.zero_grad()
            optimizer.step()
            return {"loss": loss.item()}

        return runs.Trainer(step, optimizer)

    return trainer


def trainer_plain_sampler(model, config, data, device="cpu"):
    """An alternative: the slower EpisodeSampler, SGD with momentum, and the accuracy recorded too."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.meta_lr, momentum=0.9)
    sampler = episodes.EpisodeSampler(data["train"], config.ways, config.shots, config.queries)

    def step(i):
        episode = sampler.sample(episodes.step_generator(config.seed, i))
        scores = model(episode.support_x, episode.support_y, episode.query_x)
        loss = F.cross_entropy(scores, episode.query_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "accuracy": (scores.argmax(-1) == episode.query_y).float().mean().item()}

    return runs.Trainer(step, optimizer)


WRONG_TRAINERS = [
    (make_trainer(parameters=lambda model: model.encoder.parameters()), "the scale is not in the optimizer"),
    (make_trainer(clear=False), "still there"),
    (make_trainer(zero_after_backward=True), "BEFORE loss.backward()"),
    (make_trainer(support_loss=True), "scored the support set"),
    (make_trainer(train_mode=False), "eval mode while training"),
    (make_trainer(generator="run"), "depend on the seed and the step only"),
    (make_trainer(generator="first"), "same episode"),
    (make_trainer(generator="no seed"), "config.seed"),
    (make_trainer(optimizer_per_step=True), "never stepped"),
]


@pytest.mark.parametrize("correct", [notebook_solution(NOTEBOOK, "trainer"), make_trainer(), trainer_plain_sampler],
                         ids=["notebook", "reference", "plain sampler"])
def test_correct_trainers_pass(correct, capsys):
    checks.check_trainer(correct, Config)
    assert "check_trainer: all 3 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,words", WRONG_TRAINERS, ids=[w for _, w in WRONG_TRAINERS])
def test_wrong_trainers_are_rejected_with_the_reason(wrong, words):
    with pytest.raises(ExerciseError) as error:
        checks.check_trainer(wrong, Config)
    assert words in str(error.value) and str(error.value).startswith("check_trainer"), str(error.value)


# The build-it, part 3: the capstone row


class CosineNet(torch.nn.Module):
    """The notebook's model, in small: a Conv4 with batch norm and a learned log-scale."""

    def __init__(self):
        super().__init__()
        self.config = Config(hidden=8)
        self.encoder = models.Conv4(hidden=8)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))


def row_reference(run, model, payload):
    return {"trained_on": "Omniglot background (Lake, 964 characters)", "family": "metric",
            "meta_parameters": models.count_parameters(model),
            "learned_variables": lambda ways, shots: ways * model.config.hidden,
            "note": f"{run.folder} ({payload['step']} steps)"}


def row_alternative(run, model, payload):
    """An alternative: the size of the embedding measured, the parameters counted by hand, fewer words."""
    size = model.encoder(torch.zeros(1, 1, 28, 28)).shape[1]
    return {"trained_on": "Omniglot background", "meta_parameters": sum(p.numel() for p in model.parameters()),
            "learned_variables": lambda ways, shots: size * ways}


def row_changed(change):
    def row(run, model, payload):
        out = row_reference(run, model, payload)
        change(out, model)
        return out
    return row


WRONG_ROWS = [
    (row_changed(lambda r, m: r.update(learned_variables=lambda n, k: n * k * m.config.hidden)), "N*K support"),
    (row_changed(lambda r, m: r.update(learned_variables=lambda n, k: n * m.config.hidden + 1)),
     "the scale is a meta-parameter"),
    (row_changed(lambda r, m: r.update(learned_variables=5 * m.config.hidden)), "is a function"),
    (row_changed(lambda r, m: r.update(meta_parameters=models.count_parameters(m.encoder))), "left out the scale"),
    (row_changed(lambda r, m: r.update(meta_parameters=sum(p.numel() for p in m.parameters())
                                       + sum(b.numel() for b in m.buffers()))), "running statistics"),
    (row_changed(lambda r, m: r.update(trained_on="Omniglot, Lake split")), "Omniglot background"),
    (row_changed(lambda r, m: r.pop("meta_parameters")), "needs 'meta_parameters'"),
    (row_changed(lambda r, m: r.update(name="cosine")), "has no field name"),
    (row_changed(lambda r, m: r.update(learned_variables=lambda n, k: models.count_parameters(m))),
     "ONE task"),
]


@pytest.mark.parametrize("correct", [notebook_solution(NOTEBOOK, "capstone_row"), row_reference, row_alternative])
def test_correct_rows_pass(correct, capsys):
    checks.check_capstone_row(correct, CosineNet())
    assert "check_capstone_row: all 4 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,words", WRONG_ROWS, ids=[w for _, w in WRONG_ROWS])
def test_wrong_rows_are_rejected_with_the_reason(wrong, words):
    with pytest.raises(ExerciseError) as error:
        checks.check_capstone_row(wrong, CosineNet())
    assert words in str(error.value) and str(error.value).startswith("check_capstone_row"), str(error.value)


# The face of the module


class FaceNet(protonet.FewShotModel):
    def __init__(self, config):
        super().__init__(config)
        self.log_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, support_x, support_y, query_x):
        z_support, z_query = self.embed_episode(support_x, query_x)
        return cosine_reference(z_support, support_y, z_query, int(support_y.max()) + 1, self.log_scale.exp())


@dataclass
class FaceConfig:
    hidden: int = 8
    ways: int = 5
    shots: int = 1
    queries: int = 1
    steps: int = 1
    meta_lr: float = 1e-3
    seed: int = 0
    image_size: int = 28
    channels_last: bool = False

    def __post_init__(self):
        if self.ways < 2 or self.shots < 1 or self.queries < 1 or self.steps < 0 or not self.meta_lr > 0:
            raise ValueError("bad config")


@dataclass
class LaxConfig(FaceConfig):
    def __post_init__(self):
        if self.shots < 1 or self.queries < 1 or self.steps < 0 or not self.meta_lr > 0:
            raise ValueError("bad config")


@dataclass
class NoSeedConfig:
    hidden: int = 8
    ways: int = 5
    steps: int = 1
    image_size: int = 28
    channels_last: bool = False


def face(**changes) -> types.ModuleType:
    module = types.ModuleType("face_test")
    vars(module).update(Config=FaceConfig, build=FaceNet, load_data=lambda config, smoke=False: {},
                        trainer=make_trainer(), evaluate=protonet.evaluate, predictor=protonet.predictor,
                        capstone_row=row_reference, PAPER={}, RUNS=(), describe=lambda config: "face")
    for key, value in changes.items():
        if value is None:
            delattr(module, key)
        else:
            setattr(module, key, value)
    return module


def transductive_predictor(model):
    return lambda support_x, support_y, query_x: model(support_x, support_y, query_x).detach()  # train mode


WRONG_FACES = [
    (face(trainer=None), "does not export trainer"),
    (face(capstone_row=None), "does not export capstone_row"),
    (face(Config=LaxConfig), "Config(ways=1) was accepted"),
    (face(Config=NoSeedConfig), "steps and seed"),
    (face(predictor=transductive_predictor), "changed with the other queries"),
    (face(capstone_row=lambda run, model, payload: None), "capstone_row returns"),
]


def test_a_complete_face_passes(capsys):
    checks.check_method_face(face())
    assert "check_method_face: all 3 cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,words", WRONG_FACES, ids=[w for _, w in WRONG_FACES])
def test_incomplete_faces_are_rejected_with_the_reason(wrong, words):
    with pytest.raises(ExerciseError) as error:
        checks.check_method_face(wrong)
    assert words in str(error.value) and str(error.value).startswith("check_method_face"), str(error.value)


def test_unfinished_build_it_parts_are_reported_not_hidden():
    assert_unfinished_exercises_surface(checks, "check_paired_difference", "check_cosine_scores")

    def unfinished(*args):
        raise NotImplementedError("Exercise: write this part")

    with pytest.raises(NotImplementedError):
        checks.check_trainer(unfinished, Config)
    with pytest.raises(NotImplementedError):
        checks.check_capstone_row(unfinished, CosineNet())
    with pytest.raises(NotImplementedError):
        checks.check_method_face(face(capstone_row=unfinished))
