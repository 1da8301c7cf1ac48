"""docs/results.md's tables are generated from the run folders, and a test fails when the two disagree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from course_lib import results

REPO = Path(__file__).resolve().parent.parent


def write_run(root: Path, folder: str, mean: float, steps_done: int = 10) -> None:
    path = root / folder
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"command": "python -m course_lib.train protonet --out x"}))
    (path / "results.json").write_text(json.dumps({
        "results": {"5-way 1-shot": {"mean": mean, "ci95": 0.002, "episodes": 1000},
                    "5-way 1-shot bn=support": {"mean": 0.5, "ci95": 0.01, "episodes": 1000}},
        "paper": {"5-way 1-shot": 0.988}, "steps_done": steps_done, "config": {"steps": 20000},
        "machine": {"device": "cuda", "gpu": "NVIDIA H200"}, "train_seconds_total": 600.0,
    }))


def test_the_table_has_a_row_per_setting_with_the_numbers_of_the_files(tmp_path):
    write_run(tmp_path, "data/protonet", 0.98512)
    text = results.table(tmp_path)
    assert "| ProtoNet |" in text
    assert "98.5 ± 0.2 %" in text and "98.8 %" in text and "10 of 20,000" in text
    assert "NVIDIA H200, 10 min" in text and "`python -m course_lib.train protonet --out x`" in text
    assert "bn=support" not in text  # kept in the run's own results.md
    assert "Matching" not in text  # folders without results are left out


def test_a_setting_below_the_paper_says_why_and_what_it_would_take(tmp_path):
    write_run(tmp_path, "data/protonet", 0.98512)  # 98.5 + 0.2 < 98.8: below
    path = tmp_path / "data/protonet/results.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "ms_per_step": 1800.0}))
    lines = results.gaps(tmp_path)
    assert len(lines) == 1 and "5-way 1-shot by 0.1 points" in lines[0]
    assert "trained 10 of the planned 20,000 steps" in lines[0]
    # 19,990 remaining steps at 1.8 s each = 10.0 hours, on the machine the run recorded
    assert "the remaining 19,990 steps: about 10.0 h on NVIDIA H200" in lines[0]
    assert lines[0] in results.table(tmp_path)

    write_run(tmp_path / "within", "data/protonet", 0.987)  # 98.7 + 0.2 reaches 98.8: nothing to explain
    assert results.gaps(tmp_path / "within") == []
    assert "Where our CI ends below" not in results.table(tmp_path / "within")


def test_write_and_check_the_readme_block(tmp_path):
    write_run(tmp_path, "data/protonet", 0.9)
    readme = tmp_path / "docs" / "results.md"
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text(f"# Course\n\nbefore\n{results.BEGIN}\nold table\n{results.END}\nafter\n")
    assert results.main(["--root", str(tmp_path), "--check"]) == 1
    assert results.main(["--root", str(tmp_path), "--write"]) == 0
    text = readme.read_text()
    assert "90.0 ± 0.2 %" in text and "old table" not in text and text.endswith("after\n")
    assert results.main(["--root", str(tmp_path), "--check"]) == 0
    write_run(tmp_path, "data/maml/maml_5w1s", 0.97)  # a new result makes the README stale
    assert results.main(["--root", str(tmp_path), "--check"]) == 1


def test_missing_markers_are_a_clear_error_and_change_nothing(tmp_path, capsys):
    readme = tmp_path / "docs" / "results.md"
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text("# no markers\n")
    assert results.main(["--root", str(tmp_path), "--write"]) == 2
    assert "markers" in capsys.readouterr().err
    assert readme.read_text() == "# no markers\n"


def test_docs_results_matches_the_shipped_results():
    """The real check: every number in the README's results table comes from data/*/results.json."""
    assert results.main(["--root", str(REPO), "--check"]) == 0


def black_box_run(root, name: str, step: int, command: str):
    """A run folder of data/black_box as results.black_box_table reads it: its checkpoint and config.json."""
    import torch

    folder = root / "data" / "black_box" / name
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step, "config": {"steps": step}}, folder / "checkpoint.pt")
    (folder / "config.json").write_text(json.dumps({"method": "sequence", "command": command}))


def test_the_black_box_block_takes_numbers_from_the_notebook_table_and_steps_from_the_checkpoint(tmp_path):
    folder = tmp_path / "data" / "black_box"
    folder.mkdir(parents=True)
    (folder / "05_black_box_full.json").write_text(json.dumps({"rows": {
        "pixel nearest neighbour": {"2-way 1-shot": {"mean": 0.672, "ci95": 0.017, "episodes": 1000}},
        "in-context transformer": {"2-way 1-shot": {"mean": 0.9312, "ci95": 0.011, "episodes": 1000}}}}))
    command = ("python -m course_lib train sequence --model transformer --ways 2 --shots 1 --steps 10000 "
               "--out data/black_box/transformer_2way_1shot")
    black_box_run(tmp_path, "transformer_2way_1shot", 10000, command)
    readme = tmp_path / "docs" / "results.md"
    readme.parent.mkdir(parents=True, exist_ok=True)
    block = "black-box-table"
    readme.write_text(f"{results.BEGIN}\n{results.END}\n{results.begin_marker(block)}\nold\n{results.end_marker(block)}\n")
    assert results.main(["--root", str(tmp_path), "--check"]) == 1
    assert results.main(["--root", str(tmp_path), "--write"]) == 0
    text = readme.read_text()
    assert "| in-context transformer | 2-way 1-shot (1,000 episodes) | 93.1 ± 1.1 % | > 90 % | 10,000 |" in text
    assert f"`{command}`" in text
    assert "| pixel nearest neighbour | 2-way 1-shot (1,000 episodes) | 67.2 ± 1.7 % |" in text and "\nold\n" not in text
    black_box_run(tmp_path, "transformer_2way_1shot", 20000, command)  # retrained: README is stale
    assert results.main(["--root", str(tmp_path), "--check"]) == 1


def test_docs_results_has_every_generated_block():
    readme = (REPO / "docs" / "results.md").read_text()
    for block in results.BLOCKS:
        assert results.begin_marker(block) in readme and results.end_marker(block) in readme, block


def test_a_converted_run_shows_todays_command_for_it(tmp_path):
    black_box_run(tmp_path, "transformer_4way_1shot", 10000, "python -m course_lib.sequence_learners --seed 1 ...")
    config = tmp_path / "data" / "black_box" / "transformer_4way_1shot" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "command_now": "python -m course_lib train "
                                  "sequence --seed 1 --out data/black_box/transformer_4way_1shot"}))
    command, steps = results._black_box_command(tmp_path, "transformer", "4-way 1-shot")
    assert command == "python -m course_lib train sequence --seed 1 --out data/black_box/transformer_4way_1shot"
    assert steps == "10,000"


def test_the_capstone_block_shows_each_cell_of_the_capstone_file_and_marks_short_ones(tmp_path):
    folder = tmp_path / "data" / "capstone"
    folder.mkdir(parents=True)
    cell = {"mean": 0.9758, "ci95": 0.0023, "episodes": 1000, "seconds": 60.0}
    (folder / "results.json").write_text(json.dumps({
        "episodes": 1000,
        "methods": {
            "protonet": {"trained_on": "Omniglot", "variables": {"learned_variables": 320, "meta_parameters": 111936},
                         "cells": {"omniglot": {"5-way 1-shot": cell},
                                   "mnist": {"5-way 1-shot": {**cell, "mean": 0.7561, "episodes": 300}}}},
            "mann": {"trained_on": "Lake", "cells": {"omniglot": {"2-way 1-shot": {**cell, "mean": 0.949}}}}},
        "runs": [{"method": "protonet", "hardware": {"gpu": "NVIDIA H100"}}]}))
    text = results.capstone_table(tmp_path)
    protonet_row = next(line for line in text.splitlines() if line.startswith("| protonet |"))
    assert "| 97.6 ± 0.2 % | 75.6 ± 0.2 % (300 ep.) | – |" in protonet_row
    assert "320 / 111,936" in protonet_row and "NVIDIA H100, 2 min" in protonet_row
    mann_row = next(line for line in text.splitlines() if line.startswith("| mann |"))
    assert mann_row.count("–") == len(results.CAPSTONE_COLUMNS) - 1 and "94.9 ± 0.2 %" in mann_row
