"""docs/instructor_notes.md stays true to the notebooks: its exercise table and its build-it entries."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTES = (ROOT / "docs" / "instructor_notes.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the `## title` section of the notes, up to the next `## ` heading."""
    start = NOTES.index(f"\n## {title}\n")
    end = NOTES.find("\n## ", start + 1)
    return NOTES[start:end if end != -1 else None]


def notebooks() -> dict[str, str]:
    """{"03": source of notebooks/03_*.py, ...}"""
    return {path.name[:2]: path.read_text(encoding="utf-8") for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))}


def solution_functions(source: str) -> list[str]:
    """Names of the functions whose body holds a `# BEGIN SOLUTION` marker, in notebook order."""
    names, current = [], None
    for line in source.splitlines():
        if match := re.match(r"\s*def (\w+)\(", line):
            current = match.group(1)
        elif "# BEGIN SOLUTION" in line:
            names.append(current)
    return names


def build_it_sections(source: str) -> dict[str, str]:
    """{"7": heading} for the notebook's `## 7. Build it...` headings."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^# ## (\d+)\. Build it.*$", source, re.M)}


def build_it_entries() -> dict[str, tuple[str, str]]:
    """{"03": (section number the entry names, entry text)} for the `### NN · ... (section S)` entries."""
    text = section("Build-it assignments")
    parts = re.split(r"^### (\d\d) · .*\(section (\d+)\)$", text, flags=re.M)
    return {parts[i]: (parts[i + 1], parts[i + 2]) for i in range(1, len(parts), 3)}


def test_the_exercise_table_lists_exactly_the_solution_functions():
    table = re.findall(r"^\| (\d\d) \| `(\w+)`", section("Exercises and the mistakes their checks catch"), re.M)
    expected = [(number, name) for number, source in notebooks().items() for name in solution_functions(source)]
    missing = [f"{n} {name}" for n, name in expected if (n, name) not in table]
    extra = [f"{n} {name}" for n, name in table if (n, name) not in expected]
    assert not missing and not extra, (
        f"docs/instructor_notes.md's exercise table is out of date: missing rows {missing}, rows for functions with "
        f"no solution block {extra}")
    assert table == expected, "the table's rows are not in notebook order"


def test_every_build_it_section_has_an_entry_with_its_section_number():
    expected = {number: sections for number, source in notebooks().items() if (sections := build_it_sections(source))}
    entries = build_it_entries()
    assert set(entries) == set(expected), (
        f"build-it entries in docs/instructor_notes.md: missing {sorted(set(expected) - set(entries))}, for a "
        f"notebook with no Build it section {sorted(set(entries) - set(expected))}")
    wrong = {n: entries[n][0] for n in entries if entries[n][0] not in expected[n]}
    assert not wrong, f"these entries name another section than the notebook's Build it heading: {wrong}"


def test_the_constants_quoted_in_build_it_entries_are_the_notebooks():
    """A quoted `BAR = 0.88` must be a line of the notebook, so a changed bar cannot go unnoticed."""
    sources = notebooks()
    stale = []
    for number, (_, text) in build_it_entries().items():
        source = " ".join(sources[number].split())
        for quoted in re.findall(r"`([A-Z_]+ =[^`]*)`", text):
            if " ".join(quoted.split()) not in source:
                stale.append(f"{number}: {quoted}")
    assert not stale, f"constants quoted in docs/instructor_notes.md that the notebooks no longer define: {stale}"


def test_every_number_of_a_reference_result_is_in_the_notebooks_committed_outputs():
    """The results quoted for the build-its are copied from the committed full-mode runs, not typed."""
    import json

    notes = (ROOT / "docs" / "instructor_notes.md").read_text()
    found = re.findall(r"^### (\d\d) · .*?^\* \*\*Reference result:\*\* (.*?)$", notes, re.M | re.S)
    assert found, "no '* **Reference result:**' lines under the build-it entries"
    for number, result in found:
        notebook = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        texts = []
        for cell in json.loads(notebook.read_text())["cells"]:
            for output in cell.get("outputs", []):
                for text in [output.get("text", "")] + list(output.get("data", {}).values()):
                    texts.append("".join(text) if isinstance(text, list) else str(text))
        outputs = "\n".join(texts)
        missing = [value for value in re.findall(r"\d+\.\d+", result) if value not in outputs]
        assert not missing, f"notebook {number}: {missing} quoted in the notes but not in {notebook.name}'s outputs"
