"""Files from elsewhere are data, never code: no checkpoint is unpickled with ``weights_only=False``."""

from __future__ import annotations

import ast
import json
import pathlib
from pathlib import Path

import pytest
import torch

from course_lib import results

REPO = Path(__file__).resolve().parent.parent


class TouchOnUnpickle:
    """Unpickling this object calls ``Path.touch(marker)``: a stand-in for any code hidden in a .pt file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def plant_black_box_run(root: Path, marker: Path) -> Path:
    """The layout ``results.black_box_table`` reads, with a booby-trapped LSTM checkpoint; returns its path."""
    folder = root / "data" / "black_box"
    folder.mkdir(parents=True)
    (folder / "05_black_box_full.json").write_text(json.dumps({"rows": {
        "LSTM": {"2-way 1-shot": {"mean": 0.9, "ci95": 0.01, "episodes": 1000}}}}))
    checkpoint = folder / "lstm_2way_1shot" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    (checkpoint.parent / "config.json").write_text(json.dumps({"method": "sequence", "command": "python -m ..."}))
    # An otherwise valid checkpoint: a loader that unpickles everything would succeed (and touch the marker).
    torch.save({"step": 10, "config": {"steps": 10, "seed": 0, "note": TouchOnUnpickle(marker)}}, checkpoint)
    return checkpoint


def test_the_planted_payload_is_live(tmp_path):
    """Control: unpickling the planted file without weights_only really runs its code."""
    marker = tmp_path / "control-marker"
    checkpoint = plant_black_box_run(tmp_path / "root", marker)
    torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert marker.exists()


def test_results_loader_refuses_a_checkpoint_that_would_run_code(tmp_path):
    """The results loader does not run the payload, and its error names the file."""
    marker = tmp_path / "marker"
    checkpoint = plant_black_box_run(tmp_path / "root", marker)
    with pytest.raises(ValueError) as info:
        results.black_box_table(tmp_path / "root")
    assert not marker.exists()
    assert str(checkpoint) in str(info.value) and "delete it" in str(info.value)


def test_results_check_and_write_report_the_file_and_leave_the_document(tmp_path, capsys):
    """``--check`` and ``--write`` exit 2 with a message naming the file, run nothing, write nothing."""
    marker = tmp_path / "marker"
    root = tmp_path / "root"
    checkpoint = plant_black_box_run(root, marker)
    block = "black-box-table"
    readme_text = (f"{results.BEGIN}\n{results.END}\n"
                   f"{results.begin_marker(block)}\nold\n{results.end_marker(block)}\n")
    document = root / "docs" / "results.md"
    document.parent.mkdir(parents=True)
    document.write_text(readme_text)
    for option in ("--check", "--write"):
        assert results.main(["--root", str(root), option]) == 2
        assert str(checkpoint) in capsys.readouterr().err
    assert not marker.exists()
    assert document.read_text() == readme_text


# --------------------------------------------------------------------------
# Static check: every torch.load in course_lib passes weights_only=True
# --------------------------------------------------------------------------


def unsafe_torch_loads(source: str) -> list[int]:
    """Line numbers of ``torch.load(...)`` calls without the literal keyword ``weights_only=True``.

    Parsed with ``ast``: comments, strings and docstrings that mention torch.load are not calls.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        is_torch_load = (isinstance(function, ast.Attribute) and function.attr == "load"
                         and isinstance(function.value, ast.Name) and function.value.id == "torch")
        if not is_torch_load:
            continue
        safe = any(keyword.arg == "weights_only" and isinstance(keyword.value, ast.Constant)
                   and keyword.value.value is True for keyword in node.keywords)
        if not safe:
            lines.append(node.lineno)
    return lines


def test_the_static_check_sees_calls_not_comments():
    """The checker flags unsafe calls and ignores text that only looks like one."""
    source = '''
"""Docstring: torch.load(path) is fine to mention."""
# torch.load(path, weights_only=True)  <- a comment, not a call
safe = torch.load(path, map_location="cpu", weights_only=True)
unsafe = torch.load(path, map_location="cpu")  # weights_only=True
explicit = torch.load(path, weights_only=False)
computed = torch.load(path, weights_only=flag)
'''
    assert unsafe_torch_loads(source) == [5, 6, 7]


def test_no_torch_load_in_course_lib_can_run_code():
    """Every ``torch.load`` call in course_lib/**/*.py passes ``weights_only=True``."""
    files = sorted((REPO / "course_lib").rglob("*.py"))
    assert files
    unsafe = [f"{path.relative_to(REPO)}:{line}" for path in files
              for line in unsafe_torch_loads(path.read_text(encoding="utf-8"))]
    assert unsafe == [], f"torch.load without weights_only=True (it could run code from the file): {unsafe}"
