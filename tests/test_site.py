"""The static site: every notebook becomes a page, and broken links or images fail the build."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_lib import site

REPO = Path(__file__).resolve().parent.parent


def write_notebook(path: Path, *markdown: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(text) for text in markdown]
    notebook.cells.append(nbformat.v4.new_code_cell("1 + 1", outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]))
    nbformat.write(notebook, path)


def test_build_writes_pages_in_course_order_and_rewrites_notebook_links(tmp_path):
    """Pages for NN_slug notebooks only, index in order, .ipynb links pointing at .html pages."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_second.ipynb", "# 01 · Second\n\nBack to [the start](00_first.ipynb).")
    write_notebook(notebooks / "00_first.ipynb", "# 00 · First\n\n## A part\n\nOn to [next](01_second.ipynb).")
    write_notebook(notebooks / "scratch.ipynb", "# not part of the course")
    out = tmp_path / "site"
    pages = site.build(notebooks, out)
    assert [p.name for p in pages] == ["index.html", "00_first.html", "01_second.html"]
    index = (out / "index.html").read_text()
    assert index.index("00 · First") < index.index("01 · Second")
    assert 'href="01_second.html"' in (out / "00_first.html").read_text()
    assert "01_second.ipynb" not in (out / "00_first.html").read_text()
    assert site.broken_references(out) == []


def test_broken_links_anchors_and_images_are_reported(tmp_path):
    """A missing page, a missing anchor, a missing image and an empty src are each found."""
    (tmp_path / "a.html").write_text(
        '<h1 id="top">A</h1><a href="#top">ok</a><a href="b.html#nowhere">bad anchor</a>'
        '<a href="missing.html">bad page</a><img src="images/none.png"><img src="">'
        '<img src="data:image/png;base64,AAAA"><a href="https://example.org/x">external</a>'
    )
    (tmp_path / "b.html").write_text('<h2 id="here">B</h2>')
    problems = site.broken_references(tmp_path)
    assert len(problems) == 4, problems
    assert any("missing.html" in p for p in problems)
    assert any("#nowhere" in p for p in problems)
    assert any("none.png" in p for p in problems)
    assert any("without src" in p for p in problems)


def test_build_without_notebooks_says_so(tmp_path):
    """An empty folder is an error that names the folder, not an empty site."""
    with pytest.raises(FileNotFoundError, match="NN_slug"):
        site.build(tmp_path, tmp_path / "site")


def test_the_course_site_builds_with_no_broken_references(tmp_path):
    """The real course: one page per notebook, every local link and image resolves."""
    out = tmp_path / "site"
    code = site.main(["build", "--notebooks", str(REPO / "notebooks"), "--out", str(out)])
    assert code == 0
    assert len(list(out.glob("[0-9][0-9]_*.html"))) == len(site.course_notebooks(REPO / "notebooks"))
