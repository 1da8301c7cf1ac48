"""Every notebook has the shape docs/course_style.md describes.

Objectives at the top, an outline that matches the numbered headings, the
notation linked, a "What we learned" section, and no provenance (commands,
sessions, "shipped" runs) in the lesson outside the final "How this was made"
cell.
"""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HOW_MADE = "## How this was made"
# How, where and for how long a run was made: the hardware, its load, wall times, commands and their
# flags, checkpoints, resuming and re-running. A lesson says what a number means instead.
PROVENANCE = re.compile(
    r"\bshipped\b|python -m |\bsession\b|stopped by hand|\bCI (?:machine|run|job)|\bin CI\b"
    r"|first version of this notebook"
    r"|\b[CG]PUs?\b|\blaptop|\b(?:minutes|hours) of (?:meta-)?training|\bwall[- ]?(?:clock|time)|\bload average|\b(?:this|that|the|our|a) (?:shared |loaded )?machine\b(?! learning)"
    r"|\bre-?(?:run|ran)\b|\bre-?(?:execut|evaluat)"
    r"|\bcheckpoint|\bresum(?:e|ed|es|ing)\b"
    r"|(?<![\w-])--[a-z]"
    # a run folder named in the lesson; pointing to a data README for its commands is fine
    r"|`data/(?!cache/)[\w.-]+/?(?:[\w<>.-]+/?)*(?<!README\.md)`",
    re.IGNORECASE)

# Passages that teach the words themselves, not how a run was made. Keep each one narrow.
TEACHES_THE_WORDS = {
    # The welcome's guide to running the course: what a notebook costs on a CPU, which device it picks.
    "00_welcome": re.compile(r"^\* \*\*Modes and time\.\*\*.*?(?=^\* \*\*Data\.\*\*)", re.S | re.M),
    # 09 explains the device choice of the code cell that follows it.
    "09_benchmark": re.compile(r"so we compute on the CPU with one\s+thread, whatever device the setup found"),
}


def provenance_in(stem: str, cell: str) -> list[str]:
    allowed = TEACHES_THE_WORDS.get(stem)
    if allowed is not None:
        cell = allowed.sub("", cell)
    return [m.group(0) for m in PROVENANCE.finditer(cell)]


def markdown_cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


def lesson_cells(path: Path) -> list[str]:
    """The markdown cells before the final "How this was made" cell."""
    cells = markdown_cells(path)
    return [c for c in cells if not c.lstrip().startswith(HOW_MADE)]


def test_style_guide_and_notation_exist():
    for name in ("course_style.md", "notation.md"):
        text = (ROOT / "docs" / name).read_text()
        assert len(text.split()) > 200, f"docs/{name} is missing or nearly empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_objectives_notation_and_what_we_learned(path):
    cells = lesson_cells(path)
    first = cells[0]
    assert "you will be able to" in first.lower(), f"{path.name}: the first cell states no learning objectives"
    assert "notation.md" in first, f"{path.name}: the first cell does not link docs/notation.md"
    assert any(c.lstrip().startswith("## What we learned") for c in cells), f"{path.name}: no '## What we learned'"


def numbered_headings(cells: list[str]) -> list[int]:
    return [int(m.group(1)) for c in cells for m in re.finditer(r"^## (\d+)\.", c, re.M)]


def outline_items(first_cell: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^(\d+)\. ", first_cell, re.M)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outline_matches_headings(path):
    cells = lesson_cells(path)
    headings = numbered_headings(cells)
    assert headings == list(range(1, len(headings) + 1)), f"{path.name}: headings are numbered {headings}"
    outline = next((outline_items(c) for c in cells[:3] if outline_items(c)), [])
    if headings:
        assert outline == headings, f"{path.name}: the outline lists {outline}, the headings are {headings}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_provenance_in_the_lesson(path):
    found = [(i, word) for i, c in enumerate(lesson_cells(path)) for word in provenance_in(path.stem, c)]
    assert not found, (f"{path.name}: provenance words in the lesson {found}; move them to data/*/README.md "
                       f"or the final '{HOW_MADE}' cell")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_how_this_was_made_is_last_and_collapsed(path):
    notebook = nbformat.read(path, as_version=4)
    made = [i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith(HOW_MADE)]
    if not made:
        return
    assert made == [len(notebook.cells) - 1], f"{path.name}: '{HOW_MADE}' must be the one last cell"
    hidden = notebook.cells[-1].metadata.get("jupyter", {}).get("source_hidden")
    assert hidden, f"{path.name}: the '{HOW_MADE}' cell should be collapsed (metadata jupyter.source_hidden)"


def test_the_checks_can_fail(tmp_path):
    """A notebook with provenance, no objectives and a wrong outline fails every check above."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · Bad\n\n1. one\n2. two\n"),
        nbformat.v4.new_markdown_cell("## 1. One\nThe shipped run took 3 s (`python -m course_lib train`)."),
    ])
    path = tmp_path / "99_bad.ipynb"
    nbformat.write(notebook, path)
    for check in (test_objectives_notation_and_what_we_learned, test_outline_matches_headings,
                  test_no_provenance_in_the_lesson):
        with pytest.raises(AssertionError):
            check(path)


@pytest.mark.parametrize("sentence", [
    "Each checkpoint is a short CPU run.",
    "It was then trained on for about VSML's wall time.",
    "A GPU job; here a few meta-iterations show the loop.",
    "Change `HEAD_STEPS` and rerun the table.",
    "The run was re-run twice and resumed from its last checkpoint.",
    "The cell re-evaluates each checkpoint on the first episodes.",
    "Meta-train on Omniglot (`--dataset omniglot`).",
    "It trains in minutes on a laptop.",
    "After 40 minutes of meta-training the loss had not left its plateau.",
    "measured on the machine that runs this notebook, under a load average of 4",
    "The figures use the run in `data/maml/sinusoid/` when it is there.",
    "Three ProtoNets in `data/protonet_ablations/` each change one thing.",
])
def test_provenance_is_caught(sentence):
    assert provenance_in("99_bad", sentence), f"PROVENANCE misses {sentence!r}"


@pytest.mark.parametrize("sentence", [
    "A course in machine learning; second-order MAML costs more seconds per step.",
    "The cell saved the learned optimizer with `runs.save_checkpoint`; a fresh network loaded from it is used.",
    "A run that stops and continues must train on exactly the episodes an uninterrupted one would.",
    "The in-context learners are far from good; $a -- b$ is a range.",
    "**Try it** (commands in `data/gpicl/README.md`): train the sweep with batch 64.",
])
def test_teaching_is_not_caught(sentence):
    assert not provenance_in("99_bad", sentence), f"PROVENANCE flags teaching: {provenance_in('99_bad', sentence)}"


def test_allowed_passages_are_narrow():
    """The 09 exception allows its one sentence, not the word CPU elsewhere in 09, nor in another notebook."""
    allowed = "The arithmetic per episode is tiny, so we compute on the CPU with one\nthread, whatever device the setup found."
    assert not provenance_in("09_benchmark", allowed)
    assert provenance_in("08_gpicl", allowed)
    assert provenance_in("09_benchmark", allowed + " Each row is a short CPU run.")


# A decimal number or a percentage in the lesson's prose must be one the notebook prints (so a
# re-run that changes it shows up here), unless the sentence cites a paper. Numbers inside
# $math$ and `code` are definitions, not results.
PROSE_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*\.\d+|\d+(?:\.\d+)?(?= ?%))")
CITATION = re.compile(r"et al\.|\b(?:19|20)\d\d\b|paper|report", re.IGNORECASE)


def printed_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [v if isinstance(v, str) else "".join(v)
                      for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def unprinted_numbers(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    printed = printed_text(notebook)
    missing = []
    for cell in lesson_cells(path):
        prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|95 ?% confidence", "", cell, flags=re.S)
        for sentence in re.split(r"(?<=[.;:])\s+|\n\n", prose):
            if not CITATION.search(sentence):
                missing += [n for n in PROSE_NUMBER.findall(sentence) if n not in printed]
    return missing


def rerun_params():
    from test_committed_outputs import NOT_YET_RERUN
    for path in NOTEBOOKS:
        marks = (pytest.mark.xfail(strict=False, reason="outputs of an older run") if path.stem in NOT_YET_RERUN
                 else ())
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(rerun_params()))
def test_numbers_in_prose_are_printed_by_the_notebook(path):
    missing = unprinted_numbers(path)
    assert not missing, (f"{path.name}: the prose quotes {missing}, which no output prints; build the sentence "
                         "from variables (display(Markdown(f'...'))) or cite the paper it comes from")


def test_the_number_check_can_fail(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("The model reaches 91.2 % on the queries."),
        nbformat.v4.new_code_cell("print(acc)", outputs=[nbformat.v4.new_output("stream", text="91.7\n")]),
    ])
    path = tmp_path / "99_bad.ipynb"
    nbformat.write(notebook, path)
    assert unprinted_numbers(path) == ["91.2"]
