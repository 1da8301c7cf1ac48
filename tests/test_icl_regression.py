"""In-context linear regression (notebook 08): the two oracles against brute force, no label leaks, the CLI."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import cli, gpicl_runs
from course_lib import icl_regression as icl
from course_lib.runs import train_loop


def _sequences(dim=3, points=7, count=5, seed=0, noise_var=0.25):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(count, dim, generator=generator)
    x, y = icl.sample_sequences(weights, points, noise_var, generator)
    return weights, x, y


def test_ridge_matches_the_closed_form_prefix_by_prefix():
    noise_var = 0.3
    _, x, y = _sequences(noise_var=noise_var)
    predicted = icl.ridge_predictions(x, y, noise_var)
    for s in range(x.shape[0]):
        X, Y = x[s].double().numpy(), y[s].double().numpy()
        for t in range(x.shape[1]):
            w_hat = np.linalg.solve(X[:t].T @ X[:t] + noise_var * np.eye(X.shape[1]), X[:t].T @ Y[:t])
            assert predicted[s, t].item() == pytest.approx(float(X[t] @ w_hat), abs=1e-5)
    assert torch.all(predicted[:, 0] == 0)  # no examples yet: the prior mean


def test_ridge_recovers_w_without_noise_once_it_has_d_examples():
    weights, x, _ = _sequences(dim=3, points=8, noise_var=0.0)
    y = (x @ weights.unsqueeze(-1)).squeeze(-1)
    predicted = icl.ridge_predictions(x, y, noise_var=1e-9)
    torch.testing.assert_close(predicted[:, 4:], y[:, 4:], atol=1e-4, rtol=0)


def test_dmmse_matches_brute_force_bayes_over_the_pool():
    noise_var = 0.5
    pool = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    _, x, y = _sequences(noise_var=noise_var)
    predicted = icl.dmmse_predictions(x, y, pool, noise_var, chunk=2)  # chunks must not matter
    for s in range(x.shape[0]):
        for t in range(x.shape[1]):
            log_like = [-sum((y[s, i] - x[s, i] @ w) ** 2 for i in range(t)) / (2 * noise_var) for w in pool]
            log_like = torch.tensor([float(v) for v in log_like], dtype=torch.float64)
            posterior = torch.softmax(log_like, 0)
            expected = float(x[s, t].double() @ (posterior @ pool.double()))
            assert predicted[s, t].item() == pytest.approx(expected, abs=1e-5)


def test_dmmse_with_one_task_knows_it_from_the_start_and_finds_a_pool_member():
    pool = torch.randn(1, 3)
    x, y = icl.sample_sequences(pool.expand(4, 3), 6, 0.25, torch.Generator().manual_seed(2))
    torch.testing.assert_close(icl.dmmse_predictions(x, y, pool, 0.25), (x @ pool[0]), atol=1e-5, rtol=0)
    big_pool = torch.randn(50, 3, generator=torch.Generator().manual_seed(3))
    x, y = icl.sample_sequences(big_pool[17].expand(4, 3), 12, 1e-4, torch.Generator().manual_seed(4))
    torch.testing.assert_close(icl.dmmse_predictions(x, y, big_pool, 1e-4)[:, -1], x[:, -1] @ big_pool[17],
                               atol=1e-3, rtol=0)


def test_pools_are_reproducible_and_inf_has_none():
    a, b = icl.task_pool(16, 4, seed=0), icl.task_pool(16, 4, seed=0)
    assert torch.equal(a, b) and a.shape == (16, 4)
    assert not torch.equal(a, icl.task_pool(16, 4, seed=1))
    assert icl.task_pool("inf", 4, seed=0) is None


def test_token_t_never_contains_y_t_and_the_model_is_causal():
    config = icl.RegressionConfig(dim=3, points=6, d_model=16, heads=2, layers=2, num_tasks="4,inf")
    model = icl.build(config).eval()
    _, x, y = _sequences(dim=3, points=6, count=4)
    x, y = x.expand(2, 4, 6, 3).clone(), y.expand(2, 4, 6).clone()
    t = 3
    changed = y.clone()
    changed[..., t] += 5.0
    assert torch.equal(icl.tokens(x, y)[..., : t + 1, :], icl.tokens(x, changed)[..., : t + 1, :])
    with torch.no_grad():
        before, after = icl.predict(model, x, y), icl.predict(model, x, changed)
    torch.testing.assert_close(before[..., : t + 1], after[..., : t + 1])  # y_t reaches no prediction <= t
    assert not torch.allclose(before[..., t + 1], after[..., t + 1])  # ...but it is the context of t + 1


def test_the_config_rejects_what_would_fail_later():
    for bad in ({"noise_var": 0.0}, {"dim": 0}, {"d_model": 10, "heads": 4}, {"num_tasks": ""},
                {"num_tasks": "0"}, {"num_tasks": "4,4"}, {"steps": -1}):
        with pytest.raises(ValueError):
            icl.RegressionConfig(**bad)
    old = icl.RegressionConfig(num_tasks=[1, 4, "inf"])  # as the shipped run folder stores it
    assert old.num_tasks == "1,4,inf" and old.pools == [1, 4, "inf"]


TINY = ["--dim", "3", "--points", "6", "--d-model", "16", "--heads", "2", "--layers", "1", "--batch-size", "8",
        "--test-episodes", "8", "--no-progress", "--threads", "1", "--device", "cpu"]


def train(*argv):
    return cli.main(["train", "icl-regression", *map(str, argv)])


def test_a_sweep_is_one_run_folder_that_resumes_exactly(tmp_path):
    out = tmp_path / "run"
    entries = train("--out", out, "--num-tasks", "2,inf", "--steps", 20, *TINY)
    for name in ("config.json", "results.json", "results.md", "history.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert list(entries) == ["2", "inf"]
    assert "dmmse" in entries["2"]["new"] and "dmmse" not in entries["inf"]["new"]  # no dMMSE for an unlimited pool
    assert all(math.isfinite(r["new"]["model"]["mean"]) for r in entries.values())
    run = gpicl_runs.load_regression_run(out)
    assert run["steps"] == 20 and run["eval_sequences"] == 8 and [r["num_tasks"] for r in run["rows"]] == [2, "inf"]
    assert run["history"]["step"] == [10, 20] and len(run["history"]["loss"][0]) == 2

    halves = tmp_path / "halves"
    train("--out", halves, "--num-tasks", "2,inf", "--steps", 7, *TINY)
    train("--out", halves, "--resume", "--steps", 20, *TINY[-7:])
    resumed = gpicl_runs.load_regression_run(halves)
    assert resumed["history"] == run["history"] and resumed["rows"] == run["rows"]
    assert len(json.loads((halves / "config.json").read_text())["later_commands"]) == 1

    gpicl_runs.export_regression_weights(out)  # what a run folder ships: all models in bf16
    model, config = gpicl_runs.load_regression_models(out)
    assert config.pools == [2, "inf"] and model.num_models == 2
    shipped = torch.load(out / "weights.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.bfloat16 for v in shipped.values())


def test_bad_input_is_a_usage_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(icl, "load_data", lambda *a, **k: pytest.fail("data was made"))
    for bad, match in ((["--num-tasks", "0"], "at least 1"), (["--num-tasks", "many"], "not a positive integer"),
                       (["--noise-var", "0"], "noise_var must be > 0"), (["--resume"], "holds no checkpoint.pt")):
        out = tmp_path / "bad"
        with pytest.raises(SystemExit, match=match):
            train("--out", out, "--steps", 2, *TINY, *bad)
        assert not out.exists()


def test_a_truncated_checkpoint_under_resume_is_an_error_that_names_it(tmp_path):
    out = tmp_path / "run"
    train("--out", out, "--num-tasks", "2", "--steps", 2, *TINY)
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises((SystemExit, ValueError), match=re.escape(str(checkpoint))):
        train("--out", out, "--resume", "--steps", 4, *TINY[-7:])


def test_training_learns_a_single_task():
    """Oracle: with one task in the pool the Bayes-optimal error is the noise floor; training must approach it."""
    config = icl.RegressionConfig(dim=2, points=4, d_model=16, heads=2, layers=1, batch_size=32, steps=150,
                                  meta_lr=3e-3, warmup=10, num_tasks="1")
    torch.manual_seed(0)
    model = icl.build(config)
    history = train_loop(icl.trainer(model, config, icl.load_data(config)).step, config.steps, progress=False)
    _, losses = history["loss_1"]
    assert sum(losses[-10:]) < 0.3 * sum(losses[:10])
    row = icl.evaluate_models(model, config, sequences=64)[0]
    assert row["pool"]["model"]["mean"] < 3 * row["pool"]["dmmse"]["mean"] + 0.05


def test_the_shipped_run_shows_both_regimes():
    """Notebook 08's claim, re-measured from the shipped weights: 1 task -> dMMSE, 1,024 tasks -> ridge."""
    folder = Path(__file__).resolve().parents[1] / "data" / "gpicl" / "regression_cpu"
    if not (folder / "weights.pt").is_file():
        pytest.skip("data/gpicl/regression_cpu is not in this checkout")
    model, config = gpicl_runs.load_regression_models(folder)
    rows = {row["num_tasks"]: row["new"] for row in icl.evaluate_models(model, config, sequences=128)}
    assert rows[1]["model_to_dmmse"]["mean"] < 0.05 < rows[1]["model_to_ridge"]["mean"]
    assert rows[1024]["model_to_ridge"]["mean"] < 0.5 * rows[1024]["model_to_dmmse"]["mean"]
    assert rows["inf"]["model"]["mean"] < 0.5 * rows[1]["model"]["mean"]  # learns new tasks; 1 task does not
    assert gpicl_runs.load_regression_run(folder)["steps"] == 15520


def test_the_regression_face_predicts_queries_from_a_context():
    config = icl.RegressionConfig(dim=3, points=6, d_model=16, heads=2, layers=1, num_tasks="2,inf")
    model = icl.build(config)
    _, x, y = _sequences(dim=3, points=6, count=1)
    predict = icl.predictor(model, model_index=1)
    queries = predict(x[0, :5], y[0, :5], x[0, 5:].expand(3, -1))
    with torch.no_grad():
        direct = icl.predict(model, x.expand(2, 1, 6, 3), y.expand(2, 1, 6))[1, 0, 5]
    torch.testing.assert_close(queries, direct.expand(3))
