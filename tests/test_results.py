"""The README's results table is generated from the run folders, and CI fails when the two disagree."""

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


def test_write_and_check_the_readme_block(tmp_path):
    write_run(tmp_path, "data/protonet", 0.9)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Course\n\nbefore\n{results.BEGIN}\nold table\n{results.END}\nafter\n")
    assert results.main(["--root", str(tmp_path), "--check"]) == 1
    assert results.main(["--root", str(tmp_path), "--write-readme"]) == 0
    text = readme.read_text()
    assert "90.0 ± 0.2 %" in text and "old table" not in text and text.endswith("after\n")
    assert results.main(["--root", str(tmp_path), "--check"]) == 0
    write_run(tmp_path, "data/maml/maml_5w1s", 0.97)  # a new result makes the README stale
    assert results.main(["--root", str(tmp_path), "--check"]) == 1


def test_missing_markers_are_a_clear_error_and_change_nothing(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert results.main(["--root", str(tmp_path), "--write-readme"]) == 2
    assert "markers" in capsys.readouterr().err
    assert readme.read_text() == "# no markers\n"


def test_the_repository_readme_matches_the_shipped_results():
    """The real check: every number in the README's results table comes from data/*/results.json."""
    assert results.main(["--root", str(REPO), "--check"]) == 0
