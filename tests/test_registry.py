"""Adding a method touches one new file and one registry line: a toy method proves it.

Registered at run time, the toy method (tests/toy_method.py) is listed by the
command line, trains and resumes in a run folder, is evaluated, gets a job in
scripts/train_all.sh and a row in the README's results table.
"""

from __future__ import annotations

import pytest
import torch

from course_lib import cli, registry, results


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


def test_a_module_without_the_whole_face_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS})
    registry.register("incomplete", "course_lib.models")
    with pytest.raises(TypeError, match="does not export Config"):
        registry.get("incomplete")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("protonet", "course_lib.models")
    with pytest.raises(KeyError, match="unknown method"):
        registry.get("nope")
