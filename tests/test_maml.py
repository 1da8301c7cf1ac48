"""MAML and its family: oracle checks of the meta-gradients, the variants, training, evaluation, the run folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib import cli, maml, registry
from course_lib.maml import cost as maml_cost
from course_lib.maml import sinusoid as maml_sinusoid
from course_lib.data import LabelledImages
from course_lib.episodes import FastEpisodeSampler
from course_lib.maml import (BN_MODES, MAMLConfig, MetaLearner, conv4_forward, conv4_init, default_config,
                             inner_adapt, meta_loss, mlp_forward, mlp_init)
from course_lib.maml.fast import evaluate_classification, meta_backward_loop, meta_loss_loop
from course_lib.runs import RunFolder, save_checkpoint, train_loop
from course_lib.teaching import maml_figures

TOL = 1e-8


def regression_batch(tasks=3, shots=5, queries=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    (sx, sy, qx, qy), _ = maml.sinusoid_batch(g, tasks, shots, queries, torch.device("cpu"))
    return tuple(v.double() for v in (sx, sy, qx, qy))


def image_batch(tasks=3, ways=3, shots=2, queries=2, side=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(tasks, ways * shots, 1, side, side, generator=g, dtype=torch.float64)
    qx = torch.randn(tasks, ways * queries, 1, side, side, generator=g, dtype=torch.float64)
    sy = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1)
    qy = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1)
    return sx, sy, qx, qy


def small_mlp(seed=0):
    params = mlp_init((1, 6, 6, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return {k: v.requires_grad_() for k, v in params.items()}


def small_conv(ways=3, seed=0):
    params = conv4_init(ways, hidden=4, image_size=16, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64)
    return {k: v.requires_grad_() for k, v in params.items()}


def mlp_kw(variant="maml", steps=2, lr=0.05):
    return dict(variant=variant, steps=steps, inner_lr=lr, forward=mlp_forward, regression=True)


def flat(grads):
    return torch.cat([g.reshape(-1) for g in grads])


def relative(a, b):
    return float((a - b).norm() / b.norm())


# --------------------------------------------------------------------------
# Meta-gradients against oracles
# --------------------------------------------------------------------------


def test_second_order_meta_gradient_matches_finite_differences():
    params, batch = small_mlp(), regression_batch()
    loss, _ = meta_loss(params, batch, **mlp_kw("maml", steps=2, lr=0.05))
    gradient = flat(torch.autograd.grad(loss, list(params.values())))
    names, shapes = list(params), [v.shape for v in params.values()]
    base = flat([v.detach() for v in params.values()])

    def J(vector):
        pieces = torch.split(vector, [s.numel() for s in shapes])
        p = {n: piece.reshape(s) for n, piece, s in zip(names, pieces, shapes)}
        with torch.no_grad():
            return float(meta_loss(p, batch, **mlp_kw("maml", steps=2, lr=0.05))[0])

    g = torch.Generator().manual_seed(1)
    eps = 1e-5
    first_order = flat(torch.autograd.grad(meta_loss(params, batch, **mlp_kw("fomaml", steps=2, lr=0.05))[0],
                                           list(params.values())))
    for _ in range(4):
        direction = torch.randn(base.shape, generator=g, dtype=torch.float64)
        numeric = (J(base + eps * direction) - J(base - eps * direction)) / (2 * eps)
        analytic = float(gradient @ direction)
        assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(numeric)), (numeric, analytic)
        # The first-order approximation is measurably different from the true derivative here.
        assert abs(float(first_order @ direction) - numeric) > 1e-4 * max(1.0, abs(numeric))


def test_first_order_meta_gradient_is_the_query_gradient_at_the_adapted_parameters():
    params, (sx, sy, qx, qy) = small_mlp(), regression_batch()
    loss, _ = meta_loss(params, (sx, sy, qx, qy), **mlp_kw("fomaml", steps=3))
    gradient = flat(torch.autograd.grad(loss, list(params.values())))
    expected = 0
    for i in range(len(sx)):  # by hand: plain SGD on detached copies, then the query gradient there
        phi = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        for _ in range(3):
            grads = torch.autograd.grad(F.mse_loss(mlp_forward(phi, sx[i]), sy[i]), list(phi.values()))
            phi = {k: (v - 0.05 * g).detach().requires_grad_() for (k, v), g in zip(phi.items(), grads)}
        expected = expected + flat(torch.autograd.grad(F.mse_loss(mlp_forward(phi, qx[i]), qy[i]),
                                                       list(phi.values()))) / len(sx)
    assert relative(gradient, expected) < TOL


def count_native_batch_norm(monkeypatch) -> list:
    """Patch F.batch_norm (what course_lib.maml.fast calls) to count its calls; returns the counter."""
    calls, native = [], F.batch_norm

    def counted(*args, **kwargs):
        calls.append(1)
        return native(*args, **kwargs)

    monkeypatch.setattr(F, "batch_norm", counted)
    return calls


@pytest.mark.parametrize("bn", BN_MODES)
@pytest.mark.parametrize("variant", ["maml", "fomaml", "anil", "metasgd"])
def test_vmap_and_per_task_loop_give_the_same_meta_gradient(variant, bn, monkeypatch):
    # Also the test that torch's native batch norm, which the loop uses (support passes always; query passes
    # with bn="query" and "joint"), gives the meta-gradient of the hand-written one that vmap needs.
    params, batch = small_conv(), image_batch()
    lrs = {k: torch.full_like(v, 0.3).requires_grad_() for k, v in params.items()} if variant == "metasgd" else None
    kw = dict(variant=variant, steps=2, inner_lr=0.3, forward=conv4_forward, bn=bn, lrs=lrs)
    leaves = list(params.values()) + (list(lrs.values()) if lrs else [])
    native_calls = count_native_batch_norm(monkeypatch)
    batched = flat(torch.autograd.grad(meta_loss(params, batch, **kw)[0], leaves))
    assert not native_calls  # vmap: the hand-written batch norm only
    looped = flat(torch.autograd.grad(meta_loss_loop(params, batch, **kw)[0], leaves))
    tasks, layers = len(batch[0]), 4
    passes = kw["steps"] + (1 if bn != "support" else 0)  # support passes, and the query pass
    assert len(native_calls) == tasks * layers * passes  # the loop: native batch norm wherever it can
    assert relative(batched, looped) < TOL
    for leaf in leaves:  # what training runs: one backward pass per task
        leaf.grad = None
    loss, accuracy = meta_backward_loop(params, batch, **kw)
    accumulated = flat([leaf.grad for leaf in leaves])
    assert relative(accumulated, looped) < 1e-13  # the same terms, added in another order
    reference_loss, reference_accuracy = meta_loss_loop(params, batch, **kw)
    assert not loss.requires_grad and torch.allclose(loss, reference_loss.detach(), rtol=1e-14, atol=0)
    assert torch.equal(accuracy, reference_accuracy)
    if variant == "maml":  # the tolerance is tight enough to see the Hessian terms that FOMAML drops
        fomaml = flat(torch.autograd.grad(meta_loss(params, batch, **{**kw, "variant": "fomaml"})[0], leaves))
        assert relative(fomaml, looped) > 1e3 * TOL


@pytest.mark.parametrize("variant", ["maml", "fomaml", "anil", "metasgd"])
def test_per_task_loop_keeps_one_task_graph_alive_at_a_time(variant, monkeypatch):
    params, batch = small_conv(), image_batch(tasks=4)
    lrs = {k: torch.full_like(v, 0.3).requires_grad_() for k, v in params.items()} if variant == "metasgd" else None
    kw = dict(variant=variant, steps=2, inner_lr=0.3, forward=conv4_forward, bn="query", lrs=lrs)
    leaves = list(params.values()) + (list(lrs.values()) if lrs else [])
    # At each backward pass: how many MB autograd keeps (SavedTensorMeter), i.e. how many task graphs are alive.
    native_backward, kept_at_backward = torch.Tensor.backward, []

    def counted_backward(self, *args, **kwargs):
        kept_at_backward.append(meter.current)
        return native_backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", counted_backward)
    peaks = {}
    for tasks in (1, 4):
        kept_at_backward.clear()
        for leaf in leaves:
            leaf.grad = None
        with maml_cost.SavedTensorMeter() as meter:
            meta_backward_loop(params, tuple(v[:tasks] for v in batch), **kw)
        peaks[tasks] = meter.peak
        assert len(kept_at_backward) == tasks  # one backward pass per task ...
        assert len(set(kept_at_backward)) == 1  # ... each with exactly one task's graph alive (same shapes)
        assert meter.current == 0  # and every graph freed at the end
    # The peak is one task's graph, whatever the meta-batch size; differentiating the mean of all the
    # losses at once (meta_loss_loop, or vmap) keeps all four.
    assert peaks[4] == peaks[1] == kept_at_backward[0] > 0
    with maml_cost.SavedTensorMeter() as whole:
        loss, _ = meta_loss_loop(params, batch, **kw)
    assert whole.peak > 3 * peaks[1]
    del loss


def test_functional_batch_norm_matches_torch_and_support_statistics_are_not_transductive():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, 5, generator=g, dtype=torch.float64)
    w, b = torch.rand(3, generator=g, dtype=torch.float64), torch.rand(3, generator=g, dtype=torch.float64)
    expected = F.batch_norm(x, None, None, w, b, training=True, eps=1e-5)
    assert torch.allclose(maml.batch_norm(x, w, b), expected, atol=1e-12)
    params = {k: v.detach() for k, v in small_conv().items()}
    sx, _, qx, _ = (v[0] for v in image_batch())
    changed = qx.clone()
    changed[1:] = changed[1:] * 3 + 1  # change every query but the first
    for bn, depends in (("query", True), ("joint", True), ("support", False)):
        a = maml.query_outputs(conv4_forward, params, sx, qx, bn)[0]
        b = maml.query_outputs(conv4_forward, params, sx, changed, bn)[0]
        assert (not torch.allclose(a, b, atol=1e-9)) == depends, bn


# --------------------------------------------------------------------------
# The variants
# --------------------------------------------------------------------------


def test_reptile_direction_is_initial_minus_mean_adapted():
    params, (sx, sy, qx, qy) = small_mlp(), regression_batch()
    direction, _ = maml.reptile_direction(params, (sx, sy, qx, qy), steps=3, inner_lr=0.05, forward=mlp_forward,
                                          regression=True)
    adapted = []
    for i in range(len(sx)):  # by hand, on support + query (Reptile uses all of a task's data)
        x, y = torch.cat([sx[i], qx[i]]), torch.cat([sy[i], qy[i]])
        phi = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        for _ in range(3):
            grads = torch.autograd.grad(F.mse_loss(mlp_forward(phi, x), y), list(phi.values()))
            phi = {k: (v - 0.05 * g).detach().requires_grad_() for (k, v), g in zip(phi.items(), grads)}
        adapted.append(phi)
    for k, v in params.items():
        mean = torch.stack([phi[k] for phi in adapted]).mean(0)
        assert torch.allclose(direction[k], v.detach() - mean, atol=1e-12, rtol=0)
        assert direction[k].abs().max() > 0
    looped, _ = maml.reptile_direction(params, (sx, sy, qx, qy), steps=3, inner_lr=0.05, forward=mlp_forward,
                                       regression=True, batched=False)
    assert all(torch.allclose(direction[k], looped[k], atol=1e-12) for k in params)


def test_anil_adapts_only_the_head():
    params, (sx, sy, _, _) = small_conv(), image_batch()
    loss_fn = lambda p, x, y: F.cross_entropy(conv4_forward(p, x), y)  # noqa: E731
    fast = inner_adapt(params, sx[0], sy[0], 2, 0.3, loss_fn, first_order=False,
                       adapt_keys=maml.head_keys(params))
    for k in params:
        moved = not torch.equal(fast[k], params[k])
        assert moved == k.startswith("head"), k
    full = inner_adapt(params, sx[0], sy[0], 1, 0.3, loss_fn, first_order=False)
    assert not torch.equal(full["conv0_weight"], params["conv0_weight"])
    # The "anil" variant of the meta-objective is exactly this head-only inner loop.
    batch = image_batch()
    anil = meta_loss(params, batch, variant="anil", steps=2, inner_lr=0.3, forward=conv4_forward)[0]
    by_hand = torch.stack([F.cross_entropy(conv4_forward(inner_adapt(
        params, batch[0][i], batch[1][i], 2, 0.3, loss_fn, first_order=False, adapt_keys=maml.head_keys(params)),
        batch[2][i]), batch[3][i]) for i in range(3)]).mean()
    assert abs((anil - by_hand).item()) < 1e-12
    everything = meta_loss(params, batch, variant="maml", steps=2, inner_lr=0.3, forward=conv4_forward)[0]
    assert abs((anil - everything).item()) > 1e-6


def test_metasgd_learning_rates_get_meta_gradients_and_are_trained():
    config = default_config("sinusoid", "metasgd", hidden=8, meta_batch=4, steps=2)
    module = MetaLearner(config, generator=torch.Generator().manual_seed(0))
    before = {k: v.detach().clone() for k, v in module.lrs.items()}
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    (batch, _) = maml.sinusoid_batch(torch.Generator().manual_seed(0), 4, 10, 10, torch.device("cpu"))
    loss, _ = maml.meta_loss(module.theta(), batch, **module.objective_kwargs())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.lrs.values())
    optimizer.zero_grad()
    maml.meta_step(module, optimizer, batch)
    assert any(not torch.equal(before[k], v) for k, v in module.lrs.items())


def test_inner_adapt_first_order_has_identity_jacobian_and_second_order_does_not():
    params, (sx, sy, _, _) = small_mlp(), regression_batch()
    loss_fn = lambda p, x, y: F.mse_loss(mlp_forward(p, x), y)  # noqa: E731
    for first_order in (True, False):
        fast = inner_adapt(params, sx[0], sy[0], 2, 0.1, loss_fn, first_order=first_order)
        (jac,) = torch.autograd.grad(fast["fc2_bias"].sum(), [params["fc2_bias"]])
        if first_order:
            assert torch.equal(jac, torch.ones_like(jac))
        else:
            assert not torch.allclose(jac, torch.ones_like(jac))


# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------


def test_fields_left_at_none_take_the_papers_settings_and_given_ones_win():
    assert (MAMLConfig().meta_batch, MAMLConfig().inner_lr, MAMLConfig().test_inner_steps) == (32, 0.4, 3)
    twenty = MAMLConfig(ways=20)  # Finn et al.'s 20-way settings
    assert (twenty.inner_steps, twenty.inner_lr, twenty.meta_batch, twenty.queries) == (5, 0.1, 16, 5)
    reptile = MAMLConfig(variant="reptile")  # Nichol et al.'s
    assert (reptile.inner_steps, reptile.meta_batch, reptile.queries, reptile.steps) == (5, 5, 9, 100000)
    sine = MAMLConfig(task="sinusoid")
    assert (sine.hidden, sine.shots, sine.meta_batch, sine.inner_lr, sine.steps) == (40, 10, 25, 0.01, 70000)
    assert MAMLConfig(ways=20, inner_lr=0.4, meta_batch=8).inner_lr == 0.4
    assert default_config("sinusoid", "metasgd", hidden=8) == MAMLConfig(task="sinusoid", variant="metasgd", hidden=8)


@pytest.mark.parametrize("bad, match", [({"ways": 0}, "ways must be a positive integer"),
                                        ({"variant": "protomaml"}, "variant must be one of"),
                                        ({"inner_lr": -1.0}, "inner_lr must be a positive number"),
                                        ({"shots": 10, "queries": 15}, "20 drawings"),
                                        ({"batching": "threads"}, "batching must be one of"),
                                        ({"task": "mnist"}, "task must be one of")])
def test_bad_settings_are_refused_by_the_config(bad, match):
    with pytest.raises(ValueError, match=match):
        MAMLConfig(**bad)


# --------------------------------------------------------------------------
# Episodes, training, evaluation
# --------------------------------------------------------------------------


def tiny_images(classes=12, per_class=20, side=16):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(classes * per_class, 1, side, side, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return LabelledImages(images, labels, [str(c) for c in range(classes)], name="tiny")


def test_meta_batches_are_drawn_as_before_the_shared_sampler_replaced_maml_own():
    """task_batch (FastEpisodeSampler.sample_batch) draws exactly what the former BatchedEpisodes drew:
    per episode, randperm of the classes, then a random order of each class's drawings."""
    data = tiny_images()
    sx, sy, qx, qy = maml.task_batch(FastEpisodeSampler(data, 5, 1, 15), 4, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    images = data.images[torch.argsort(data.labels, stable=True)].reshape(12, 20, 1, 16, 16)
    for i in range(4):  # the former episode_indices + gather
        classes = torch.randperm(12, generator=g)[:5]
        members = torch.rand(5, 20, generator=g).argsort(dim=1)[:, :16]
        chosen = images[classes[:, None], members]
        assert torch.equal(sx[i], chosen[:, :1].reshape(5, 1, 16, 16))
        assert torch.equal(qx[i], chosen[:, 1:].reshape(75, 1, 16, 16))
        assert torch.equal(sy[i], torch.arange(5)) and torch.equal(qy[i], torch.arange(5).repeat_interleave(15))


def train_steps(config, data=None, device="cpu"):
    model = maml.build(config)
    history = train_loop(maml.trainer(model, config, data or {}, device).step, config.steps, progress=False)
    return model, history


def test_training_learns_sinusoids():
    config = default_config("sinusoid", "maml", hidden=20, meta_batch=10, steps=200, log_every=50)
    before = maml_sinusoid.evaluate_regression(maml.build(config).theta(), config, tasks=50,
                                               steps_list=(1,))["1 steps"].mean
    model, history = train_steps(config)
    after = maml_sinusoid.evaluate_regression(model.theta(), config, tasks=50, steps_list=(1,))["1 steps"].mean
    assert history["loss"][0] == [49, 99, 149, 199] and after < 0.8 * before
    joint = {k: v.detach() for k, v in model.joint.items()}  # the baseline trained beside theta
    assert not torch.equal(joint["fc0_weight"], maml.build(config).joint["fc0_weight"])


def test_batching_is_chosen_by_a_rule_recorded_in_the_config_and_both_paths_train_alike():
    assert maml.batching_for("omniglot", "cpu") == "loop" and maml.batching_for("omniglot", "cuda") == "vmap"
    assert maml.batching_for("sinusoid", "cpu") == "vmap"
    data = {"train": tiny_images()}
    trained = {}
    for batching in ("vmap", "loop", "auto", "auto"):
        config = default_config(hidden=4, image_size=16, ways=3, meta_batch=2, queries=2, steps=3, batching=batching)
        model, _ = train_steps(config, data)
        assert config.batching == (batching if batching != "auto" else "loop")  # what config.json records
        trained.setdefault(batching, []).append(torch.cat([v.detach().flatten() for v in model.theta().values()]))
    assert torch.equal(trained["auto"][0], trained["auto"][1])  # deterministic: no timing involved
    assert torch.equal(trained["auto"][0], trained["loop"][0])
    assert relative(trained["vmap"][0], trained["loop"][0]) < 1e-5  # the same numbers, up to rounding


def test_evaluation_is_reproducible_and_batching_does_not_matter():
    config = default_config(hidden=4, image_size=16, ways=5)
    module = MetaLearner(config, generator=torch.Generator().manual_seed(0))
    sampler = FastEpisodeSampler(tiny_images(), 5, 1, 15)
    a = evaluate_classification(module, sampler, count=6, max_images=80)  # one task per chunk
    b = evaluate_classification(module, sampler, count=6)
    assert a.episodes == 6 and abs(a.mean - b.mean) < 1e-6 and abs(a.ci95 - b.ci95) < 1e-6
    # Oracle: the same episodes through the training objective (3 steps, no curve) give the same accuracy.
    c = evaluate_classification(module, sampler, count=6, return_curve=True)
    batch = maml.task_batch(sampler, 6, torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, accuracy = maml.meta_loss(module.theta(), batch, **module.objective_kwargs(steps=3))
    curve = c.accuracy_by_inner_step
    assert len(curve) == 4 and abs(curve[-1] - c.mean) < 1e-6 and abs(float(accuracy) - c.mean) < 1e-6
    assert c.as_dict()["accuracy_by_inner_step"] == [round(v, 5) for v in curve] and "accuracy_by" not in a.as_dict()
    with pytest.raises(ValueError, match="5-way head"):
        evaluate_classification(module, FastEpisodeSampler(tiny_images(), 10, 1, 5), count=2)


def test_predictor_is_one_episode_of_the_evaluation():
    config = default_config(hidden=4, image_size=16, ways=5, test_inner_steps=2)
    module = MetaLearner(config, generator=torch.Generator().manual_seed(0))
    sampler = FastEpisodeSampler(tiny_images(), 5, 1, 15)
    episode = sampler.sample(torch.Generator().manual_seed(0))
    predicted = maml.predictor(module)(episode.support_x, episode.support_y, episode.query_x).argmax(-1)
    accuracy = float((predicted == episode.query_y).float().mean())
    assert accuracy == pytest.approx(evaluate_classification(module, sampler, count=1, bn="support").mean, abs=1e-6)


def test_init_from_copies_the_matching_meta_parameters_and_keeps_a_new_head(tmp_path):
    five = MetaLearner(default_config("omniglot", "maml", 5, hidden=8), generator=torch.Generator().manual_seed(1))
    path = tmp_path / "five.pt"
    save_checkpoint(path, five, five.config)
    twenty = MetaLearner(default_config("omniglot", "maml", 20, hidden=8), generator=torch.Generator().manual_seed(2))
    head_before = {k: v.clone() for k, v in twenty.params.items() if v.shape != five.params[k].shape}
    copied = maml.load_initialisation(twenty, path)
    assert head_before and not set(head_before) & {k.split(".", 1)[1] for k in copied}
    for name, value in twenty.params.items():
        if name in head_before:  # the 20-way head keeps its own initialisation
            assert torch.equal(value, head_before[name])
        else:
            assert torch.equal(value, five.params[name]), name
    other = MetaLearner(default_config("omniglot", "maml", 20, hidden=16))
    with pytest.raises(ValueError, match="no meta-parameter"):
        maml.load_initialisation(other, path)  # another width: nothing matches
    with pytest.raises(ValueError, match="no checkpoint"):
        maml.load_initialisation(other, tmp_path / "missing.pt")


# --------------------------------------------------------------------------
# Run folders: python -m course_lib train|eval maml, and the former python -m course_lib.maml
# --------------------------------------------------------------------------

COMMON = ["--smoke-data", "--hidden", "8", "--meta-batch", "2", "--queries", "2", "--test-episodes", "4",
          "--test-settings", "5x1", "--no-progress", "--device", "cpu"]


@pytest.mark.real_data("omniglot")
@pytest.mark.parametrize("variant", ["maml", "reptile"])
def test_a_run_folder_has_both_batch_norm_modes_and_the_curve_and_the_old_command_still_runs(tmp_path, variant):
    out = tmp_path / variant
    maml.main(["--variant", variant, "--ways", "5", "--shots", "1", "--steps", "3", "--out", str(out), *COMMON])
    record = json.loads((out / "config.json").read_text())
    assert record["method"] == "maml" and record["config"]["batching"] == "loop"  # the CPU's, recorded
    results = json.loads((out / "results.json").read_text())
    assert results["steps_done"] == 3 and set(results["results"]) == {"5-way 1-shot", "5-way 1-shot bn=support"}
    entry = results["results"]["5-way 1-shot"]
    steps = record["config"]["test_inner_steps"]
    assert entry["episodes"] == 4 and len(entry["accuracy_by_inner_step"]) == steps + 1
    assert "| 5-way 1-shot | support |" in (out / "results.md").read_text()
    maml.main(["--out", str(out), "--eval-only", "--test-episodes", "3", "--test-settings", "5x1,20x1",
               "--no-progress", "--smoke-data", "--device", "cpu"])  # 20-way: skipped (a 5-way head)
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["5-way 1-shot"]["episodes"] == 3 and "20-way 1-shot" not in results["results"]
    assert json.loads((out / "config.json").read_text())["later_commands"][0].startswith("python -m course_lib eval")


def test_sinusoid_run_folder_holds_the_joint_baseline_and_loads(tmp_path):
    out = tmp_path / "sine"
    cli.main(["train", "maml", "--task", "sinusoid", "--steps", "6", "--hidden", "10", "--log-every", "3",
              "--test-episodes", "20", "--out", str(out), "--no-progress", "--device", "cpu"])
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"maml", "joint pretraining"}
    assert set(results["results"]["maml"]) == {"0 steps", "1 steps", "10 steps"}
    assert "MSE" in (out / "results.md").read_text()
    module, payload = registry.load(out)
    assert module.config.hidden == 10 and module.config.batching == "vmap" and payload["step"] == 6
    assert not module.training and set(dict(module.joint.items())) == set(module.theta())
    assert payload["history"]["loss"][0] == [2, 5]


@pytest.mark.real_data("omniglot")
def test_time_budget_stops_early_and_still_writes_results(tmp_path):
    out = tmp_path / "budget"
    cli.main(["train", "maml", "--variant", "fomaml", "--steps", "1000", "--max-minutes", "0.0001", "--out", str(out),
              *COMMON])
    results = json.loads((out / "results.json").read_text())
    assert 1 <= results["steps_done"] < 1000
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == results["steps_done"]


@pytest.mark.parametrize("bad, match", [(["--ways", "0"], "ways must be"), (["--variant", "protomaml"], "variant"),
                                        (["--inner-lr", "-1"], "inner_lr"), (["--shots", "10", "--queries", "15"],
                                                                             "20 drawings"),
                                        (["--batching", "threads"], "batching"), (["--bn", "running"], "bn must")])
def test_bad_options_are_usage_errors_before_anything_is_loaded_or_written(tmp_path, monkeypatch, bad, match):
    monkeypatch.setattr("course_lib.maml.training.omniglot_splits", lambda *a, **k: pytest.fail("data was loaded"))
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "maml", "--out", str(out), "--steps", "3", *COMMON, *bad])
    assert not out.exists()


def test_a_missing_init_from_checkpoint_is_refused_before_any_file_is_written(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match="no checkpoint at"):
        cli.main(["train", "maml", "--task", "sinusoid", "--out", str(out), "--steps", "3", "--init-from",
                  str(tmp_path / "missing.pt"), "--no-progress", "--device", "cpu"])
    assert not out.exists()


@pytest.mark.parametrize("folder", [run.folder for run in maml.RUNS
                                    if (Path(__file__).resolve().parent.parent / run.folder).is_dir()])
def test_shipped_runs_load_and_may_be_resumed(folder):
    run = RunFolder(Path(__file__).resolve().parent.parent / folder)
    module, payload = registry.load(run.path)
    # the batching rule of maml.batching_for: the per-task loop for the Conv4 on a CPU, vmap for the sinusoid's MLP
    assert module.config.batching == ("vmap" if module.config.task == "sinusoid" else "loop")
    assert payload["step"] > 1000
    config = MAMLConfig(**run.stored_config())
    run.check("maml", dataclasses.replace(config, steps=config.steps + 1), resume=True)  # only steps changed: fine


# --------------------------------------------------------------------------
# Notebook 04's helpers: costs, the inner-loop widget, the sinusoid figure
# --------------------------------------------------------------------------


def test_evaluation_by_loop_and_by_vmap_agree():
    config = default_config(hidden=4, image_size=16, ways=5, test_inner_steps=2)
    module = MetaLearner(config, generator=torch.Generator().manual_seed(0))
    sampler = FastEpisodeSampler(tiny_images(), 5, 1, 15)
    looped = evaluate_classification(module, sampler, count=5, batching="loop", return_curve=True)
    batched = evaluate_classification(module, sampler, count=5, batching="vmap", return_curve=True)
    plain = evaluate_classification(module, sampler, count=5)  # auto, last step only
    assert abs(looped.mean - batched.mean) < 1e-6 and abs(plain.mean - looped.mean) < 1e-6
    assert looped.accuracy_by_inner_step == pytest.approx(batched.accuracy_by_inner_step, abs=1e-6)
    assert len(looped.accuracy_by_inner_step) == 3
    with pytest.raises(ValueError, match="batching"):
        evaluate_classification(module, sampler, count=2, batching="threads")


def test_inner_loop_trace_records_each_step_of_the_inner_loop():
    params = {k: v.detach() for k, v in small_conv().items()}
    sx, sy, qx, qy = (v[0] for v in image_batch())
    trace = maml_figures.inner_loop_trace(params, sx, sy, qx, qy, steps=3, inner_lr=0.3, forward=conv4_forward)
    assert trace.steps == 3 and len(trace.query_loss) == 4 and len(trace.support_loss) == 4
    assert trace.query_outputs.shape == (4, len(qx), 3)
    assert torch.allclose(trace.query_outputs.sum(-1), torch.ones(4, len(qx), dtype=torch.float64))
    loss_fn = lambda p, x, y: F.cross_entropy(conv4_forward(p, x), y)  # noqa: E731
    for s in (0, 2, 3):  # oracle: s steps of the library's inner loop, then the query pass
        fast = inner_adapt(params, sx, sy, s, 0.3, loss_fn, first_order=True)
        logits = conv4_forward(fast, qx)
        assert torch.allclose(trace.query_outputs[s], logits.softmax(-1), atol=1e-10)
        assert trace.query_loss[s] == pytest.approx(float(F.cross_entropy(logits, qy)), abs=1e-10)
        assert trace.query_accuracy[s] == pytest.approx(float((logits.argmax(-1) == qy).double().mean()))
        assert trace.support_loss[s] == pytest.approx(float(loss_fn(fast, sx, sy)), abs=1e-10)
        assert torch.equal(trace.predictions(s), logits.argmax(-1))
    assert trace.support_loss[-1] < trace.support_loss[0]  # it is gradient descent on the support loss
    # The same inputs give the same trace (a pure function), and theta is untouched.
    again = maml_figures.inner_loop_trace(params, sx, sy, qx, qy, steps=3, inner_lr=0.3, forward=conv4_forward)
    assert again.query_loss == trace.query_loss
    # Regression: predictions instead of probabilities, no accuracy.
    mlp = {k: v.detach() for k, v in small_mlp().items()}
    rsx, rsy, rqx, rqy = (v[0] for v in regression_batch())
    sine = maml_figures.inner_loop_trace(mlp, rsx, rsy, rqx, rqy, steps=2, inner_lr=0.05, forward=mlp_forward,
                                 regression=True)
    assert sine.query_accuracy is None and sine.query_outputs.shape == (3, len(rqx), 1)


def test_inner_loop_figure_and_widget_render_headlessly(monkeypatch):
    import matplotlib

    from course_lib.teaching import plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = {k: v.detach() for k, v in small_conv().items()}
    other = {k: v.detach() for k, v in small_conv(seed=1).items()}
    sx, sy, qx, qy = (v[0] for v in image_batch())
    traces = {"MAML": maml_figures.inner_loop_trace(params, sx, sy, qx, qy, 3, 0.3),
              "random init": maml_figures.inner_loop_trace(other, sx, sy, qx, qy, 2, 0.3)}
    fig = maml_figures.inner_loop_figure(sx, sy, qx, qy, traces, step=99, per_class=1)  # the step is clamped
    images = len(sx) + 2 * 3  # support row + one query per class per model
    assert len(fig.axes) == images + 2 and "after 3 inner steps" in fig._suptitle.get_text()
    plt.close(fig)
    shown = []  # (output widget, suptitle) of every redraw; the real show_in_output needs a kernel

    def record(output, figure):
        shown.append((output, figure._suptitle.get_text()))
        plt.close(figure)

    monkeypatch.setattr(plots, "show_in_output", record)
    widget = maml_figures.inner_loop_widget(sx, sy, qx, qy, traces, per_class=1)
    assert widget.slider.max == 3 and widget.slider.value == 0
    widget.slider.value = 2
    assert [title for _, title in shown] == ["after 0 inner steps", "after 2 inner steps"]
    assert all(output is widget.children[1] for output, _ in shown)
    assert not plt.get_fignums()


def test_sinusoid_figure_draws_one_panel_per_task_and_model():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (sx, sy, _, _), ap = maml.sinusoid_batch(torch.Generator().manual_seed(0), 2, 5, 1, torch.device("cpu"))
    tasks = [(float(ap[i, 0]), float(ap[i, 1]), sx[i], sy[i]) for i in range(2)]
    models = {"a": mlp_init((1, 8, 8, 1)), "b": mlp_init((1, 8, 8, 1))}
    fig = maml_figures.sinusoid_figure(tasks, models, steps_list=(0, 1), inner_lr=0.01, grid_points=20)
    assert len(fig.axes) == 4
    plt.close(fig)


def test_meta_gradient_cost_grows_with_inner_steps_only_for_second_order():
    batch = tuple(v.float() if v.is_floating_point() else v for v in image_batch(tasks=2, side=16))
    costs = {}
    for variant in ("maml", "fomaml", "reptile"):
        for steps in (1, 4):
            config = default_config(variant=variant, hidden=4, image_size=16, ways=3, inner_steps=steps)
            module = MetaLearner(config, generator=torch.Generator().manual_seed(0))
            costs[variant, steps] = maml_cost.measure_meta_gradient(module, batch, repeats=1)
            assert costs[variant, steps]["ms"] > 0 and costs[variant, steps]["gpu_peak_mb"] is None
            assert all(p.grad is None for p in module.parameters())  # nothing left behind
    assert costs["maml", 4]["graph_mb"] > 1.3 * costs["maml", 1]["graph_mb"]
    assert costs["fomaml", 4]["graph_mb"] == pytest.approx(costs["fomaml", 1]["graph_mb"], rel=0.05)
    assert costs["maml", 4]["graph_mb"] > costs["fomaml", 4]["graph_mb"]
    assert costs["reptile", 1]["graph_mb"] == costs["reptile", 1]["task_graph_mb"] == 0
    for variant in ("maml", "fomaml"):  # training's per-task loop keeps one of the two tasks' graphs
        assert costs[variant, 1]["task_graph_mb"] == pytest.approx(costs[variant, 1]["graph_mb"] / 2, rel=0.05)


def test_saved_tensor_meter_counts_what_the_graph_keeps():
    x = torch.randn(1000, requires_grad=True)  # 4,000 bytes
    with maml_cost.SavedTensorMeter() as meter:
        y = (x * x).sum()  # mul saves x (once, though twice referenced)
    assert meter.peak == 4000 and meter.current == 4000
    del y
    assert meter.current == 0  # released with the graph


def test_moving_average_and_the_training_curves_figure():
    from course_lib.teaching import maml_figures

    assert maml_figures.moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    fig = maml_figures.training_curves_figure({"maml": ([10, 20], [0.5, 0.7])}, {"maml": 6.0},
                                              {"maml": (20, 0.9), "reptile": (30, 0.8)}, window=1)
    left, right = fig.axes[:2]
    x, y = left.lines[0].get_data()
    assert list(x) == [10, 20] and list(y) == [50.0, 70.0]
    assert list(right.lines[0].get_data()[0]) == [1.0, 2.0]  # steps * 6 s / 60 = minutes
    stars = [tuple(c.get_offsets()[0]) for c in left.collections]
    assert (20.0, 90.0) in stars and (30.0, 80.0) in stars  # a run without a curve still has its star
    import matplotlib.pyplot as plt
    plt.close("all")
