"""The static site as a reader sees it: every page opened in headless Chromium.

Builds the site from the committed notebooks (``python -m course_tools.site
build`` does the same), opens the index and every notebook page from disk in
Debian's ``chromium`` driven by Playwright, and checks what a link checker
cannot: each page has its notebook's first heading as its title (not
nbconvert's "Notebook") and renders it, links to the index and to the
previous and next notebook (and following "next" from the first page walks
the whole course), pages with widgets show the static-snapshot note, no
request fails (scripts, stylesheets, the widget renderer's icon fonts:
``requestfailed`` in Chromium, e.g. ERR_FILE_NOT_FOUND), every image has been decoded by the
browser (``naturalWidth > 0``: not just present on disk), the index links
to every page, and the equations are typeset: MathJax ships with the site
(``site/vendor/``), so with every http(s) request refused, as on a reader's
offline machine or in CI, each page with equations shows MathJax output
(``mjx-container``) and no raw TeX (``$$``, ``\\frac``, ...) in its text. No page
may ask for anything from the internet. Screenshots of the index, of every
page's top and of the first displayed equation of every page are saved to
``test-artifacts/site/`` to look at.

Skipped without Chromium or Playwright, except under ``CI=true``, where it
fails (CI must run it).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest

from course_tools import site

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "site"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


def _missing() -> list[str]:
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright is not installed (pip install playwright)")
    return missing


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    missing = _missing()
    if missing:
        message = "; ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the site browser test: {message}")
        pytest.skip(message)
    out = tmp_path_factory.mktemp("site")
    pages = site.build(REPO_ROOT / "notebooks", out, repo_files=REPO_ROOT)
    assert site.broken_references(out) == []
    assert site.external_scripts(out) == []
    return out, pages


def _markdown_of(notebook: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "markdown")


RAW_TEX = re.compile(r"\$\$|\\(frac|theta|mathcal|sum|nabla|begin\{)|\$\\")

# The prose of a page, without code: MathJax must have replaced every formula in it.
PROSE = "() => Array.from(document.querySelectorAll('.jp-RenderedMarkdown')).map(e => e.innerText).join('\\n')"


def test_every_page_renders_with_its_title_and_decoded_images(built_site):
    from playwright.sync_api import sync_playwright

    out, pages = built_site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--disable-gpu", "--headless"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            # No network: the site must work offline. Every request to the internet is refused and recorded.
            external = []
            page.route("http*://**", lambda route: (external.append(route.request.url), route.abort()))
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)[:200]))
            failed_requests = []  # e.g. a font the widget renderer asks for that is not shipped
            page.on("requestfailed", lambda request: failed_requests.append(
                f"{request.url.rsplit('/', 1)[-1]} ({request.failure})"))
            notebook_pages = [p for p in pages if p.name != "index.html"]
            for path in pages:
                errors.clear()
                failed_requests.clear()
                page.goto(path.as_uri(), wait_until="load", timeout=60_000)
                page.wait_for_load_state("networkidle", timeout=30_000)  # fonts and widget views requested
                if path.name != "index.html":
                    notebook = nbformat.read(REPO_ROOT / "notebooks" / f"{path.stem}.ipynb", as_version=4)
                    if page.title() != site.notebook_title(notebook):
                        problems.append(f"{path.name}: title {page.title()!r}, not the first heading")
                    position = notebook_pages.index(path)
                    expected = {
                        "index": "index.html",
                        "prev": notebook_pages[position - 1].name if position else None,
                        "next": notebook_pages[position + 1].name if position + 1 < len(notebook_pages) else None,
                    }
                    for where in ("top", "bottom"):
                        nav = page.locator(f"nav.course-nav-{where}")
                        if nav.count() != 1 or not nav.is_visible():
                            problems.append(f"{path.name}: no visible {where} navigation")
                            continue
                        found = {
                            "index": nav.locator("a.course-index").get_attribute("href"),
                            "prev": (nav.locator("a[rel=prev]").get_attribute("href")
                                     if nav.locator("a[rel=prev]").count() else None),
                            "next": (nav.locator("a[rel=next]").get_attribute("href")
                                     if nav.locator("a[rel=next]").count() else None),
                        }
                        if found != expected:
                            problems.append(f"{path.name}: {where} navigation {found}, expected {expected}")
                    note = page.locator(".course-snapshot-note")
                    shows_note = note.count() == 1 and note.is_visible() and "widgets do not respond here" in note.inner_text()
                    if site.has_widgets(notebook) != shows_note:
                        problems.append(f"{path.name}: widgets {site.has_widgets(notebook)}, snapshot note shown {shows_note}")
                    if "NBVAL_" in page.evaluate("() => document.body.innerText"):
                        problems.append(f"{path.name}: shows nbval markers in its code")
                    if not page.evaluate("() => Boolean(window.MathJax && MathJax.startup && MathJax.startup.promise)"):
                        problems.append(f"{path.name}: MathJax did not load")
                    else:
                        page.evaluate("() => MathJax.startup.promise")
                    raw = sorted(set(m.group(0) for m in RAW_TEX.finditer(page.evaluate(PROSE))))
                    if raw:
                        problems.append(f"{path.name}: raw TeX visible in the text: {raw}")
                    typeset = page.eval_on_selector_all("mjx-container", "els => els.length")
                    has_math = "$$" in _markdown_of(REPO_ROOT / "notebooks" / f"{path.stem}.ipynb")
                    if has_math and typeset == 0:
                        problems.append(f"{path.name}: has equations but none was typeset")
                    if typeset:
                        failed = page.eval_on_selector_all("mjx-merror", "els => els.map(e => e.textContent)")
                        if failed:
                            problems.append(f"{path.name}: MathJax could not typeset {failed[:3]}")
                        display = page.locator("mjx-container[display=true]")
                        (display if display.count() else page.locator("mjx-container")).first.scroll_into_view_if_needed()
                        page.screenshot(path=str(ARTIFACTS / f"{path.stem}-equation.png"))
                        page.evaluate("() => window.scrollTo(0, 0)")
                title = page.locator("h1").first.inner_text(timeout=10_000).strip()
                if not title:
                    problems.append(f"{path.name}: no title")
                images = page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.getAttribute('src') ? e.getAttribute('src').slice(0, 40) : '',"
                           " e.complete && e.naturalWidth > 0])")
                broken = [src for src, ok in images if not ok]
                if broken:
                    problems.append(f"{path.name}: {len(broken)} of {len(images)} images not decoded: {broken[:3]}")
                page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"))
                if errors:
                    problems.append(f"{path.name}: JavaScript errors {errors[:3]}")
                if failed_requests:
                    problems.append(f"{path.name}: {len(failed_requests)} failed requests {failed_requests[:6]}")
            page.goto((out / "index.html").as_uri())
            links = page.eval_on_selector_all("ol a", "els => els.map(e => e.getAttribute('href'))")
            # A reader who only follows "next" from the first page sees every page, in order.
            page.goto(notebook_pages[0].as_uri(), wait_until="load")
            walked = [page.url.rsplit("/", 1)[-1]]
            while page.locator("nav.course-nav-bottom a[rel=next]").count() and len(walked) <= len(pages):
                page.locator("nav.course-nav-bottom a[rel=next]").click()
                page.wait_for_load_state("load")
                walked.append(page.url.rsplit("/", 1)[-1])
            page.locator("nav.course-nav-top a.course-index").click()
            page.wait_for_load_state("load")
            back_to_index = page.url.rsplit("/", 1)[-1]
        finally:
            browser.close()
    assert problems == []
    assert external == [], "the pages asked the internet for these (the site must work offline)"
    assert links == [p.name for p in pages[1:]], "the index must link to every notebook page, in course order"
    assert walked == [p.name for p in pages[1:]], "following 'next' from the first page must walk the course"
    assert back_to_index == "index.html"


def test_notebook_pages_show_their_figures(built_site):
    """The notebooks' plots are in the pages (as inline PNGs), so a reader sees the executed course."""
    _, pages = built_site
    for path in pages[1:]:
        text = path.read_text(encoding="utf-8")
        if "matplotlib" in text or "plt." in text:
            assert "data:image/png;base64" in text, f"{path.name} plots but shows no figure"
