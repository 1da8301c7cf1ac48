"""Adding a method touches one new file and one registry line: a toy method proves it.

Registered at run time, the toy method (tests/toy_method.py) is listed by the
command line, trains and resumes in a run folder, is evaluated, gets a job in
scripts/train_all.sh, a row in the README's results table and a row in the
capstone (notebook 09).
"""

from __future__ import annotations

import json
import types

import pytest
import torch

from course_lib import capstone, cli, registry, results
from course_lib.data import LabelledImages
from course_lib.evaluation import format_accuracy


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS})  # the registration ends with the test
    registry.register("toy", "toy_method")
    return registry.get("toy")


def test_a_registered_method_is_listed_trained_resumed_tabled_and_given_a_job(toy, tmp_path, capsys):
    cli.main(["list"])
    assert "toy" in capsys.readouterr().out.split()
    folder = tmp_path / "data" / "toy"
    common = ["--test-settings", "2x1", "--test-episodes", "20", "--no-progress"]
    cli.main(["train", "toy", "--out", str(folder), "--steps", "3", *common])
    cli.main(["train", "toy", "--out", str(folder), "--steps", "6", "--resume", *common])
    straight = tmp_path / "straight"
    cli.main(["train", "toy", "--out", str(straight), "--steps", "6", *common])
    a, b = (torch.load(f / "checkpoint.pt", weights_only=True)["state_dict"] for f in (folder, straight))
    assert all(torch.equal(a[k], b[k]) for k in a)

    table = results.table(tmp_path)
    assert "| Toy prototypes | 2-way 1-shot (20 episodes) |" in table and "Gaussian blobs" in table
    assert "python -m course_lib train toy" in table
    assert ("toy", ["python", "-m", "course_lib", "train", "toy", "--out", str(tmp_path / "runs" / "toy"),
                    "--steps", "100"]) in cli.jobs(tmp_path / "runs")
    model, payload = registry.load(folder)
    assert payload["step"] == 6 and isinstance(model, torch.nn.Linear)


def test_a_run_written_with_a_former_field_name_resumes_exactly_and_loads(toy, tmp_path, capsys):
    """A run folder from before ``lr`` became ``meta_lr`` (runs.RENAMED_FIELDS) trains on with its own value."""
    common = ["--test-settings", "2x1", "--test-episodes", "5", "--no-progress"]
    old, straight = tmp_path / "old", tmp_path / "straight"
    cli.main(["train", "toy", "--out", str(old), "--steps", "3", "--meta-lr", "0.2", *common])
    payload = torch.load(old / "checkpoint.pt", weights_only=True)  # written as the former name had it
    payload["config"] = {("lr" if k == "meta_lr" else k): v for k, v in payload["config"].items()}
    torch.save(payload, old / "checkpoint.pt")
    record = json.loads((old / "config.json").read_text())
    record["config"] = payload["config"]
    (old / "config.json").write_text(json.dumps(record))
    assert registry.load(old)[0].weight.shape == (4, 4)  # loads as it is
    capsys.readouterr()
    cli.main(["train", "toy", "--out", str(old), "--steps", "6", "--resume", *common])
    assert "optimizer state" not in capsys.readouterr().err
    cli.main(["train", "toy", "--out", str(straight), "--steps", "6", "--meta-lr", "0.2", *common])
    a, b = (torch.load(f / "checkpoint.pt", weights_only=True)["state_dict"] for f in (old, straight))
    assert all(torch.equal(a[k], b[k]) for k in a)  # 0.2, not the default 0.1
    assert json.loads((old / "config.json").read_text())["config"]["meta_lr"] == 0.2
    model, payload = registry.load(old)
    assert payload["step"] == 6


def test_a_registered_method_gets_a_capstone_row(toy, tmp_path):
    """The capstone reads the registry: the toy's run is a row, evaluated on a tiny test set and tabled."""
    cli.main(["train", "toy", "--out", str(tmp_path / "data" / "toy"), "--steps", "6", "--test-settings", "2x1",
              "--test-episodes", "5", "--no-progress"])
    assert capstone.row_names()[-1] == "toy"
    rows, missing = capstone.build_rows(["toy", "pixel-nn"], root=tmp_path)
    assert not missing and [row.name for row in rows] == ["toy", "pixel-nn"]
    means = toy.load_data(toy.Config())["means"]
    labels = torch.arange(len(means)).repeat_interleave(20)
    points = means[labels] + 0.5 * torch.randn(len(labels), means.shape[1], generator=torch.Generator().manual_seed(1))
    pool = LabelledImages(points.view(len(labels), 1, 2, 2), labels, [str(c) for c in range(len(means))], name="blobs")
    result = capstone.run_rows(rows, ["mnist"], [(5, 1), (2, 1)], episodes=20, pools={"mnist": pool},
                               episode_lists={}, progress=False)
    cell = result["toy"]["cells"]["mnist"]["2-way 1-shot"]
    assert cell["episodes"] == 20 and cell["mean"] > 0.6
    assert result["toy"]["variables"] == {"setting": "5-way 1-shot", "meta_parameters": 20, "learned_variables": 20,
                                          "ratio_learned_per_meta": 1.0}
    out = tmp_path / "capstone"
    for name, entry in result.items():
        capstone.write_part(out, name, entry, mode="smoke", episodes=20, command="test",
                            hardware={"device": "cpu", "torch_threads": 1})
    record = capstone.assemble(out, "test")
    assert list(record["methods"]) == ["pixel-nn", "toy"]  # the baselines first, then the registry's order
    toy_line = next(line for line in (out / "results.md").read_text().splitlines() if line.startswith("| toy |"))
    assert format_accuracy(cell["mean"], cell["ci95"]) in toy_line
    assert capstone.read_csv((out / "results.csv").read_text())["toy"][("mnist", "2-way 1-shot")][0] == pytest.approx(
        cell["mean"], abs=1e-6)


def test_a_module_made_at_run_time_is_registered_trained_and_loaded(monkeypatch, tmp_path):
    """A notebook's method is a module object, not an import path: its own namespace, registered as it is."""
    import toy_method

    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS})
    module = types.ModuleType("notebook_toy", "A toy method made in a notebook.")
    module.__dict__.update({k: v for k, v in vars(toy_method).items() if not k.startswith("__")})
    registry.register("notebook-toy", module)
    registry.register("notebook-toy", module)  # rerunning the notebook's cell registers it again
    assert registry.get("notebook-toy") is module
    cli.main(["train", "notebook-toy", "--out", str(tmp_path / "run"), "--steps", "2", "--test-settings", "2x1",
              "--test-episodes", "5", "--no-progress"])
    model, payload = registry.load(tmp_path / "run")
    assert payload["step"] == 2 and isinstance(model, torch.nn.Linear)
    with pytest.raises(ValueError, match="already registered as notebook_toy"):
        registry.register("notebook-toy", "toy_method")


def test_a_module_without_the_whole_face_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS})
    registry.register("incomplete", "course_lib.models")
    with pytest.raises(TypeError, match="does not export Config"):
        registry.get("incomplete")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("protonet", "course_lib.models")
    with pytest.raises(KeyError, match="unknown method"):
        registry.get("nope")
