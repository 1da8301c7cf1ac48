"""The static site: every notebook becomes a page, and broken links or images fail the build."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from course_tools import site

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
    assert site.external_scripts(out) == []


def test_pages_load_mathjax_shipped_with_the_site(tmp_path):
    """MathJax 3 (and the widget renderer) are copied into the site and loaded by relative path, not from a CDN."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "00_first.ipynb", "# 00 · First\n\n$$\\theta_{t+1} = \\theta_t - \\alpha g_t$$")
    notebook = nbformat.read(notebooks / "00_first.ipynb", as_version=4)  # with stored widget state
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0}}
    nbformat.write(notebook, notebooks / "00_first.ipynb")
    out = tmp_path / "site"
    site.build(notebooks, out)
    page = (out / "00_first.html").read_text()
    assert f'src="{site.MATHJAX}"' in page
    assert f'src="{site.REQUIRE_JS}"' in page
    assert f"'{site.WIDGET_RENDERER}'" in page
    for script in (site.MATHJAX, site.REQUIRE_JS, site.WIDGET_RENDERER):
        assert (out / script).is_file() and (out / script).stat().st_size > 10_000, script
    assert (out / site.VENDOR / "mathjax" / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "MathJax.Hub.Config" not in page, "the MathJax 2 configuration must be gone"
    assert "cdnjs" not in page and "unpkg" not in page and "jsdelivr" not in page
    (out / site.MATHJAX).unlink()
    assert site.broken_references(out) == [f"00_first.html: script.src {site.MATHJAX!r} -> missing tex-svg-full.js"]


def test_scripts_from_the_internet_are_reported(tmp_path):
    """<script src="https://..."> and addresses of scripts inside inline scripts; links to web pages are fine."""
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example.org/mathjax/tex.js"></script><script src="vendor/x.js"></script>'
        '<script>var s = document.createElement("script"); s.src = "https://unpkg.com/w@1/dist/embed-amd.js";'
        ' import("https://cdn.example.org/m.esm.min.mjs");</script>'
        '<a href="https://example.org/paper.html">a paper</a><script src=""></script>'
    )
    assert site.external_scripts(tmp_path) == [
        "a.html: <script src='https://cdn.example.org/mathjax/tex.js'>",
        "a.html: inline script loads 'https://cdn.example.org/m.esm.min.mjs'",
        "a.html: inline script loads 'https://unpkg.com/w@1/dist/embed-amd.js'",
    ]
    problems = site.broken_references(tmp_path)
    assert problems == ["a.html: script.src 'vendor/x.js' -> missing x.js", "a.html: <script> without src"], problems


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
    assert site.external_scripts(out) == []
    assert len(list(out.glob("[0-9][0-9]_*.html"))) == len(site.course_notebooks(REPO / "notebooks"))
    for page in out.glob("[0-9][0-9]_*.html"):
        text = page.read_text(encoding="utf-8")
        assert "NBVAL_" not in text, f"{page.name} shows the notebook tests' markers"
        assert "<title>Notebook</title>" not in text and 'class="course-nav course-nav-top"' in text, page.name


def write_widget_notebook(path: Path, heading: str) -> None:
    """A notebook whose one output is a widget view (with its stored state), like the explorer's cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# {heading}\n\nSome text."),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nslider = make_slider()\n  # NBVAL_IGNORE_OUTPUT\nslider", outputs=[
            nbformat.v4.new_output("display_data", {
                "text/plain": "IntSlider(value=0)",
                site.WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0}})]),
    ]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0}}
    nbformat.write(notebook, path)


def test_pages_have_their_heading_as_title_navigation_and_a_note_on_widgets(tmp_path):
    """<title> is the first heading (not nbconvert's "Notebook"); index, previous and next links at top and
    bottom; the static-snapshot note only where widgets are shown; no nbval markers in the code shown."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "00_first.ipynb", "# 00 · First\n\nText.")
    write_widget_notebook(notebooks / "01_second.ipynb", "01 · Second <with> brackets")
    write_notebook(notebooks / "02_third.ipynb", "# 02 · Third")
    out = tmp_path / "site"
    site.build(notebooks, out)
    pages = {name: (out / f"{name}.html").read_text() for name in ("00_first", "01_second", "02_third")}
    assert "<title>00 · First</title>" in pages["00_first"]
    assert "<title>01 · Second &lt;with&gt; brackets</title>" in pages["01_second"]
    assert "<title>Notebook</title>" not in "".join(pages.values())

    def nav_links(page: str) -> list[tuple[str, str]]:
        navs = re.findall(r'<nav [^>]*class="course-nav[^"]*"[^>]*>(.*?)</nav>', page, re.S)
        assert len(navs) == 2, "one navigation bar at the top, one at the bottom"
        assert navs[0] == navs[1]
        return re.findall(r'<a class="course-(\w+)" href="([^"]+)"', navs[0])

    assert nav_links(pages["00_first"]) == [("index", "index.html"), ("next", "01_second.html")]
    assert nav_links(pages["01_second"]) == [("prev", "00_first.html"), ("index", "index.html"),
                                             ("next", "02_third.html")]
    assert nav_links(pages["02_third"]) == [("prev", "01_second.html"), ("index", "index.html")]
    assert "02 · Third →" in pages["01_second"] and "← 00 · First" in pages["01_second"]
    assert site.SNAPSHOT_NOTE in pages["01_second"]
    assert site.SNAPSHOT_NOTE not in pages["00_first"] and site.SNAPSHOT_NOTE not in pages["02_third"]
    assert "NBVAL" not in pages["01_second"]
    assert "make_slider" in pages["01_second"]
    assert site.broken_references(out) == []


def test_the_widget_renderers_fonts_are_shipped_and_checked(tmp_path):
    """The icon fonts the widget renderer loads from its folder are shipped (with their license) and
    found by the renderer (its public path points at them); the check reports a missing one."""
    renderer = site.ASSETS / site.WIDGET_RENDERER
    fonts = site.script_fonts(renderer)
    assert {Path(font).suffix for font in fonts} == {".woff2", ".woff", ".ttf"} and len(fonts) == 9, fonts
    for font in fonts:
        assert (renderer.parent / font).stat().st_size > 10_000, font
    assert "SIL OFL 1.1" in (renderer.parent / "FONT_AWESOME_LICENSE.txt").read_text()
    readme = (site.ASSETS / site.VENDOR / "README.md").read_text()
    assert all(font in readme for font in fonts), "each shipped font has its row (source, license, sha256)"
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_widget_notebook(notebooks / "00_first.ipynb", "00 · First")
    out = tmp_path / "site"
    site.build(notebooks, out)
    page = (out / "00_first.html").read_text()
    assert "window.__jupyter_widgets_assets_path__ = 'vendor/html-manager/'" in page
    assert site.broken_references(out) == []
    (out / site.VENDOR / "html-manager" / fonts[0]).unlink()
    assert site.broken_references(out) == [f"{site.WIDGET_RENDERER}: loads font {fonts[0]!r} -> missing"]
