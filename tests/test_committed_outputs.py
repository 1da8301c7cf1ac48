"""The committed outputs read well without a live kernel: no frozen progress widgets, no widget dumps.

A notebook executed by ``make notebooks`` (nbconvert) keeps, for a tqdm
widget, its first state ("0%|          | 0/300"), and for a widget the
plain-text dump GitHub shows in its place ("VBox(children=(IntSlider(...").
``make notebooks`` sets COURSE_PLAIN_PROGRESS=1, so course_lib's bars print
plain lines (course_lib.runtime.progress_bar), and the course's widgets are
panels whose plain text says what they are (course_lib.teaching.plots.panel).

The notebooks listed in NOT_YET_RERUN still hold outputs of a run made before
those changes: they are expected to fail (xfail, not strict) until they are
re-executed, and from then on this test guards them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# A bar that never moved ("0%|" not preceded by a digit, so "100%|" is fine) and widget dumps.
UNREADABLE = re.compile(r"(?<![0-9])0%\||VBox\(children=|HBox\(children=|IntSlider\(")

NOT_YET_RERUN: dict[str, str] = {}


def unreadable_outputs(notebook: dict) -> list[str]:
    """``cell N: <match> in '<context>'`` for every frozen bar or widget dump in the text of the outputs."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [value for key, value in output.get("data", {}).items()
                                                if key.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for match in UNREADABLE.finditer(text):
                    context = text[max(0, match.start() - 30):match.end() + 20].replace("\n", " ")
                    found.append(f"cell {number}: {match.group(0)!r} in {context!r}")
    return found


def test_the_scan_finds_frozen_bars_and_widget_dumps_only():
    """A bar at 0% and widget dumps are found; a finished bar and a panel's own text are not."""
    notebook = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {"text/plain": "train:   0%|          | 0/300 [00:00<?, ?it/s]"}},
        {"output_type": "stream", "text": ["train: 100%|##########| 300/300 [00:05<00:00, 60it/s]\n"]},
        {"output_type": "execute_result", "data": {"text/plain": "VBox(children=(IntSlider(value=0),))"}},
        {"output_type": "execute_result",
         "data": {"text/plain": "[interactive widget: the episode explorer; run the notebook to use it]"}},
    ]}]}
    found = unreadable_outputs(notebook)
    assert len(found) == 3 and "0%|" in found[0] and "VBox(children=" in found[1] and "IntSlider(" in found[2], found


def params():
    for path in NOTEBOOKS:
        marks = ()
        if path.stem in NOT_YET_RERUN:
            marks = pytest.mark.xfail(strict=False, reason="needs the full-mode re-run of the notebooks "
                                                           f"({NOT_YET_RERUN[path.stem]})")
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(params()))
def test_committed_outputs_have_no_frozen_progress_bars_or_widget_dumps(path):
    found = unreadable_outputs(json.loads(path.read_text(encoding="utf-8")))
    assert not found, (f"{path.name}: re-run it with `make notebooks` (plain progress lines, panels): "
                       + "; ".join(found[:5]))


def test_the_xfail_list_names_existing_notebooks():
    assert set(NOT_YET_RERUN) <= {path.stem for path in NOTEBOOKS}
