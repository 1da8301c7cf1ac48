"""Every notebook is a jupytext pair: notebooks/NAME.py (py:percent) and notebooks/NAME.ipynb, in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PY_STEMS = {p.stem for p in NOTEBOOKS.glob("*.py")}
IPYNB_STEMS = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
NO_NOTEBOOKS = "notebooks/ holds no notebooks yet (no *.py or *.ipynb): nothing to check"


def pair_params(stems):
    if not stems:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_NOTEBOOKS))]
    return sorted(stems)


def cells(path: Path) -> list[tuple[str, str]]:
    import jupytext

    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_every_notebook_has_both_files():
    """Each notebooks/*.py has a .ipynb twin and each .ipynb a .py twin."""
    if not PY_STEMS and not IPYNB_STEMS:
        pytest.skip(NO_NOTEBOOKS)
    assert sorted(PY_STEMS - IPYNB_STEMS) == [], "these .py files have no .ipynb (run `make sync`)"
    assert sorted(IPYNB_STEMS - PY_STEMS) == [], "these .ipynb files have no .py (run `make sync`)"


@pytest.mark.parametrize("stem", pair_params(PY_STEMS & IPYNB_STEMS))
def test_pair_has_the_same_cells(stem):
    """jupytext reads the same (cell type, source) sequence from the .py and the .ipynb."""
    from_py = cells(NOTEBOOKS / f"{stem}.py")
    from_ipynb = cells(NOTEBOOKS / f"{stem}.ipynb")
    assert len(from_py) > 0
    assert from_py == from_ipynb, f"{stem}.py and {stem}.ipynb differ: run `make sync`"


@pytest.mark.parametrize("stem", pair_params(IPYNB_STEMS))
def test_ipynb_is_committed_with_outputs(stem):
    """Each .ipynb holds the outputs of a run (at least one code cell with outputs)."""
    notebook = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells, f"{stem}.ipynb has no code cells"
    assert any(cell.get("outputs") for cell in code_cells), (
        f"{stem}.ipynb has no outputs: run it (`make notebooks`) before committing"
    )
