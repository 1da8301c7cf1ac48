"""``python -m course_lib train|eval METHOD``: one command line for every registered method.

The resume test runs for every method in the registry: N steps in one go and
N/2 + ``--resume`` must give identical weights. A method without a smoke-size
setting in :data:`SMOKE` fails :func:`test_every_registered_method_has_a_smoke_setting`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from course_lib import cli, registry, train

SMOKE = {  # method -> options that make it train in about a second on --smoke-data
    "protonet": ["--hidden", "8", "--ways", "5", "--shots", "1", "--queries", "2", "--no-channels-last"],
    "matching": ["--hidden", "8", "--ways", "5", "--shots", "1", "--queries", "2", "--no-channels-last"],
    "maml": ["--hidden", "4", "--ways", "5", "--meta-batch", "2", "--queries", "2", "--log-every", "1"],
    "sequence": ["--model", "mann", "--embed", "8", "--hidden", "16", "--heads", "2", "--batch-size", "4"],
    # rl2, symla: a constant entropy bonus (its anneal spans --steps, which this test changes on resume)
    "rl2": ["--arms", "3", "--horizon", "5", "--hidden", "8", "--batch-size", "8", "--entropy-end", "0.05"],
    "symla": ["--arms", "2", "--horizon", "5", "--hidden", "4", "--batch-size", "8", "--entropy-end", "0.05"],
    "learned-optimizer": ["--optimizee", "quadratic", "--horizon", "4", "--unroll", "2", "--hidden-size", "4",
                          "--optimizees-per-batch", "2"],
    "gpicl": ["--num-tasks", "2,inf", "--d-model", "8", "--layers", "1", "--heads", "2", "--seq-len", "12",
              "--batch-size", "4"],
    "icl-regression": ["--num-tasks", "2,inf", "--dim", "3", "--points", "6", "--d-model", "8", "--heads", "2",
                       "--layers", "1", "--batch-size", "8"],
    "vsml": ["--meta-batch", "2", "--stream-length", "6", "--input-size", "4", "--hidden", "4", "--eval-datasets",
             "digits"],
}
EVAL = ["--test-episodes", "2", "--test-settings", "5x1", "--no-progress", "--smoke-data"]


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def test_every_registered_method_has_a_smoke_setting():
    assert sorted(SMOKE) == sorted(registry.names())


@pytest.mark.real_data("omniglot")
@pytest.mark.parametrize("method", sorted(SMOKE))
def test_resume_is_exact(tmp_path, method):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    run_cli("train", method, "--out", straight, "--steps", 4, *SMOKE[method], *EVAL)
    run_cli("train", method, "--out", halves, "--steps", 2, *SMOKE[method], *EVAL)
    run_cli("train", method, "--out", halves, "--steps", 4, "--resume", *EVAL)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(halves / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    assert a["history"] == b["history"]
    record = json.loads((halves / "config.json").read_text())
    assert "--steps 2" in record["command"] and len(record["later_commands"]) == 1
    assert record["config"]["steps"] == 4
    # the time per step is measured by an invocation that starts at step 0; a resume keeps that measurement
    assert "ms_per_step" in json.loads((straight / "results.json").read_text())
    assert "ms_per_step" in json.loads((halves / "results.json").read_text())


@pytest.mark.real_data("omniglot")
def test_a_run_folder_holds_config_checkpoint_history_and_results(tmp_path, capsys):
    out = tmp_path / "run"
    run_cli("train", "protonet", "--out", out, "--steps", 3, *SMOKE["protonet"], "--test-episodes", 3,
            "--test-settings", "5x1,20x1", "--no-progress", "--smoke-data")
    for name in ("config.json", "checkpoint.pt", "history.json", "results.json", "results.md"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["steps_done"] == 3 and set(results["results"]) == {"5-way 1-shot", "20-way 1-shot"}
    assert results["results"]["5-way 1-shot"]["episodes"] == 3 and results["machine"]["device"]
    assert results["test_queries_per_class"] == {"5-way": 15, "20-way": 5}
    assert results["ms_per_step"] > 0  # trained in one invocation: the mean time per step is measured
    assert "5-way 1-shot" in (out / "results.md").read_text() and "paper" in capsys.readouterr().out
    run_cli("eval", "protonet", "--out", out, *EVAL)
    after_eval = json.loads((out / "results.json").read_text())
    assert after_eval["test_episodes"] == 2 and after_eval["ms_per_step"] == results["ms_per_step"]
    assert json.loads((out / "config.json").read_text())["later_commands"][0].startswith("python -m course_lib eval")


@pytest.mark.real_data("omniglot")
def test_training_again_without_resume_is_refused_and_overwrite_replaces(tmp_path):
    out = tmp_path / "run"
    run_cli("train", "protonet", "--out", out, "--steps", 2, *SMOKE["protonet"], *EVAL)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit, match="already holds a run"):
        run_cli("train", "protonet", "--out", out, "--steps", 1, *SMOKE["protonet"], *EVAL)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    run_cli("train", "protonet", "--out", out, "--steps", 1, "--overwrite", *SMOKE["protonet"], *EVAL)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1


@pytest.mark.parametrize("options, match", [
    (["--ways", "1"], "ways must be >= 2"),
    (["--shots", "0"], "shots must be >= 1"),
    (["--queries", "0"], "queries must be >= 1"),
    (["--lr-halve-every", "0"], "lr_halve_every must be >= 1"),
    (["--meta-lr", "0"], "meta_lr > 0"),
    (["--lr", "1e-3"], "--lr is now called --meta-lr: write --meta-lr 1e-3"),  # not read as --lr-halve-every
    (["--protocol", "lakes"], "protocol must be"),
    (["--steps", "-3"], "steps must be >= 0"),
    (["--test-settings", "5by1"], "not WAYSxSHOTS"),
    (["--test-episodes", "0"], "test-episodes must be positive"),
    (["--resume"], "holds no checkpoint.pt"),
])
def test_bad_options_are_usage_errors_before_anything_is_loaded_or_written(tmp_path, monkeypatch, options, match):
    monkeypatch.setattr("course_lib.protonet.omniglot_splits", lambda *a, **k: pytest.fail("data was loaded"))
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=match) as error:
        run_cli("train", "protonet", "--out", out, *options)
    assert error.value.code == 2 and not out.exists()


def test_an_option_of_another_method_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_cli("train", "protonet", "--out", tmp_path / "run", "--temperature", "0.1")
    assert "--temperature" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_eval_needs_a_trained_run(tmp_path):
    with pytest.raises(SystemExit, match="holds no checkpoint.pt; train first"):
        run_cli("eval", "protonet", "--out", tmp_path)


def test_the_old_entry_point_translates_to_the_new_one(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv))
    train.main(["protonet", "--out", "x", "--halve-every", "5", "--lr", "1e-3", "--eval-only"])
    assert seen == [["eval", "protonet", "--out", "x", "--lr-halve-every", "5", "--meta-lr", "1e-3"]]


def test_list_names_every_method():
    output = subprocess.run([sys.executable, "-m", "course_lib", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert [line.split()[0] for line in output.splitlines()] == registry.names()
