"""The training command line: a tiny run writes its run folder, resumes, and evaluates."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib import train


@pytest.mark.real_data("omniglot")
@pytest.mark.parametrize("method", ["protonet", "matching"])
def test_cli_writes_a_resumable_run_folder(tmp_path, method, capsys):
    out = tmp_path / method
    common = ["--out", str(out), "--smoke-data", "--hidden", "8", "--ways", "5", "--shots", "1", "--queries", "2",
              "--test-episodes", "3", "--test-settings", "5x1,20x1", "--no-progress"]
    train.main([method, "--steps", "3", *common])
    for name in ("config.json", "checkpoint.pt", "history.json", "results.json", "results.md"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["steps_done"] == 3 and set(results["results"]) == {"5-way 1-shot", "20-way 1-shot"}
    assert results["results"]["5-way 1-shot"]["episodes"] == 3 and results["machine"]["device"]
    assert "5-way 1-shot" in (out / "results.md").read_text() and "paper" in capsys.readouterr().out

    train.main([method, "--out", str(out), "--resume", "--steps", "5", "--test-episodes", "2",
                "--test-settings", "5x1", "--no-progress", "--smoke-data"])
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["steps"] == 5 and config["config"]["hidden"] == 8  # stored config, new steps
    assert "--steps 3" in config["command"] and len(config["later_commands"]) == 1
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 5
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 5


def test_an_option_of_another_method_is_a_clear_error_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="--temperature does not apply to protonet"):
        train.main(["protonet", "--out", str(out), "--temperature", "0.1"])
    assert not out.exists()
