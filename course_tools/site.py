"""The executed course as a static website: ``python -m course_tools.site build``.

    python -m course_tools.site build [--notebooks notebooks] [--out site]
    python -m course_tools.site check [--out site]

Converts every committed notebook (with the outputs of its last real run and
the stored state of its widgets) to HTML with nbconvert and writes an index
in course order. Each page has its notebook's first heading as its title,
links to the index and the previous and next notebook, a note where it shows
(inert) widgets, and no ``# NBVAL_CHECK_OUTPUT`` markers in its code.

The site works offline: MathJax 3, RequireJS and the ipywidgets renderer
(with its icon fonts) are committed in ``site_assets/vendor/`` (see the README
there), copied to ``site/vendor/`` and loaded by relative path; the page
template (``site_assets/templates/course``) configures MathJax for ``$...$``
and leaves out nbconvert's Mermaid loader, a CDN import. Vendoring (about
6 MB) was chosen over a CDN (raw TeX offline and in CI) and over an npm
install at build time. The check fails on any local link, anchor, image,
script, stylesheet or font that does not resolve, and on any page that loads
a script from the internet.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

NOTEBOOK_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
ASSETS = Path(__file__).resolve().parent / "site_assets"
VENDOR = "vendor"  # the folder of the shipped scripts, in ASSETS and in the built site
MATHJAX = f"{VENDOR}/mathjax/tex-svg-full.js"
REQUIRE_JS = f"{VENDOR}/requirejs/require.js"
WIDGET_RENDERER = f"{VENDOR}/html-manager/embed-amd.js"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SNAPSHOT_NOTE = "Static snapshot: widgets do not respond here."
NBVAL_MARKER = re.compile(r"^[ \t]*#[ \t]*NBVAL_[A-Z_]+[ \t]*\n?", re.MULTILINE)
# Fonts a bundled script loads from its own folder (webpack: ``__webpack_require__.p + "name.woff2"``);
# .eot and .svg fonts, for old browsers only, are not shipped.
SCRIPT_FONT = re.compile(r"""\.p\s*\+\s*["']([\w.-]+\.(?:woff2|woff|ttf))["']""")


def course_notebooks(folder: Path) -> list[Path]:
    """``NN_slug.ipynb`` files in course order."""
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def notebook_title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "untitled"


def has_widgets(notebook) -> bool:
    """Whether any output of the notebook is a widget (drawn from stored state, but inert, on the site)."""
    return any(WIDGET_VIEW in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", []))


def without_test_markers(notebook):
    """The notebook with the nbval marker lines (``# NBVAL_CHECK_OUTPUT``) taken out of its code."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = NBVAL_MARKER.sub("", cell.source)
    return notebook


def build(notebooks: Path, out: Path, repo_files: Path | None = None) -> list[Path]:
    """Write ``out/index.html`` and one page per notebook; return the pages."""
    import nbformat
    from nbconvert import HTMLExporter

    sources = course_notebooks(notebooks)
    if not sources:
        raise FileNotFoundError(f"no notebooks named NN_slug.ipynb in {notebooks}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(ASSETS / VENDOR, out / VENDOR)
    exporter = HTMLExporter(
        extra_template_basedirs=[str(ASSETS / "templates")], template_name="course",
        mathjax_url=MATHJAX, require_js_url=REQUIRE_JS, widget_renderer_url=WIDGET_RENDERER,
    )
    read = [nbformat.read(source, as_version=4) for source in sources]
    entries = [(f"{source.stem}.html", notebook_title(notebook)) for source, notebook in zip(sources, read)]
    for position, notebook in enumerate(read):
        navigation = {"index": "index.html", "previous": entries[position - 1] if position > 0 else None,
                      "next": entries[position + 1] if position + 1 < len(entries) else None}
        resources = {"metadata": {"name": entries[position][1]}, "course_nav": navigation,
                     "widget_assets_url": WIDGET_RENDERER.rsplit("/", 1)[0],
                     "course_snapshot_note": SNAPSHOT_NOTE if has_widgets(notebook) else ""}
        body, _ = exporter.from_notebook_node(without_test_markers(notebook), resources=resources)
        # links between notebooks (01_x.ipynb#part) point to their pages
        body = re.sub(r'href="(\d\d_[a-z0-9_]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{m[1]}.html{m[2] or ""}"',
                      body)
        # links to the course's documents (../docs/notation.md) point to their pages, the README to the index
        body = re.sub(r'href="\.\./docs/([a-z_]+)\.md(#[^"]*)?"', lambda m: f'href="docs/{m[1]}.html{m[2] or ""}"',
                      body).replace('href="../README.md"', 'href="index.html"')
        (out / entries[position][0]).write_text(body, encoding="utf-8")
    # Images the notebooks link to by relative path (e.g. ../docs/images/x.png), and the documents.
    docs = (repo_files or notebooks.parent) / "docs"
    if (docs / "images").is_dir():
        shutil.copytree(docs / "images", out / "images")
    for document in sorted(docs.glob("*.md")):
        write_document_page(document, out / "docs" / f"{document.stem}.html")
    items = "\n".join(f'      <li><a href="{name}">{html.escape(title)}</a></li>' for name, title in entries)
    (out / "index.html").write_text(f"""<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>Learning to learn: a meta-learning course</title>
  <style>body {{ font-family: sans-serif; max-width: 46em; margin: 3em auto; line-height: 1.5 }}</style></head>
  <body>
    <h1>Learning to learn: a hands-on meta-learning course</h1>
    <p>The notebooks in course order, with the outputs of their last full-mode run.
    To run them yourself: <code>make course</code> in a clone of the repository.</p>
    <ol>
{items}
    </ol>
  </body>
</html>
""", encoding="utf-8")
    return [out / "index.html"] + [out / name for name, _ in entries]


class _References(HTMLParser):
    """The references (``(tag.attribute, value)``), anchors and inline scripts of one page."""

    def __init__(self, page: Path) -> None:
        super().__init__()
        self.references: list[tuple[str, str]] = []
        self.anchors: set[str] = set()
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(page.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.anchors.update(attributes[name] for name in ("id", "name") if attributes.get(name))
        if tag == "a" and attributes.get("href"):
            self.references.append(("a.href", attributes["href"]))
        if tag == "img":
            self.references.append(("img.src", attributes.get("src") or ""))
        if tag == "link" and attributes.get("href") and "stylesheet" in (attributes.get("rel") or ""):
            self.references.append(("link.href", attributes["href"]))
        if tag == "script" and attributes.get("src") is not None:
            self.references.append(("script.src", attributes["src"] or ""))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def script_fonts(script: Path) -> list[str]:
    """The font files a bundled script (the widget renderer) loads from its own folder."""
    return sorted(set(SCRIPT_FONT.findall(script.read_text(encoding="utf-8", errors="replace"))))


def write_document_page(document: Path, page: Path) -> None:
    """One of docs/*.md as a plain page, its headings' ids lower-cased as GitHub writes them."""
    from nbconvert.filters.markdown import markdown2html

    body = markdown2html(document.read_text(encoding="utf-8"))
    body = re.sub(r' id="([^"]+)"', lambda m: f' id="{m[1].lower()}"', body)
    body = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{m[1].lower()}"', body)
    body = re.sub(r'href="([a-z_]+)\.md(#[^"]*)?"', lambda m: f'href="{m[1]}.html{m[2] or ""}"', body)
    body = re.sub(r'href="\.\./notebooks/(\d\d_[a-z0-9_]+)\.ipynb', r'href="../\1.html', body)
    page.parent.mkdir(exist_ok=True)
    page.write_text(f"""<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>{html.escape(document.stem.replace("_", " ").capitalize())}</title>
  <script src="../{MATHJAX}"></script>
  <style>body {{ font-family: sans-serif; max-width: 50em; margin: 3em auto; line-height: 1.5 }}
  table {{ border-collapse: collapse }} td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em }}</style></head>
  <body><p><a href="../index.html">Course index</a></p>
{body}
  </body>
</html>
""", encoding="utf-8")


def broken_references(out: Path) -> list[str]:
    """Local links, anchors, images, scripts and stylesheets in ``out/*.html`` that do not resolve,
    and fonts that a local script loads from its folder that are missing (the widget renderer's icons)."""
    parsed = {page.name: _References(page) for page in sorted(out.glob("*.html"))}
    problems = []
    scripts: set[Path] = set()
    for name, page in parsed.items():
        for kind, value in page.references:
            if kind in ("img.src", "script.src") and not value:
                problems.append(f"{name}: <{kind.split('.')[0]}> without src")
                continue
            url = urlparse(value)
            if url.scheme in ("data", "mailto", "javascript", "http", "https") or url.netloc:
                continue  # not a file (external addresses are not checked offline)
            target = (out / unquote(url.path)).resolve() if url.path else out / name
            if url.path and not target.exists():
                problems.append(f"{name}: {kind} {value!r} -> missing {target.name}")
                continue
            if url.fragment and target.suffix == ".html" and target.name in parsed:
                anchors = parsed[target.name].anchors  # browsers try the raw, then the decoded id
                if url.fragment not in anchors and unquote(url.fragment) not in anchors:
                    problems.append(f"{name}: {kind} {value!r} -> no anchor #{url.fragment}")
            if kind == "script.src" and target.suffix == ".js":
                scripts.add(target)
        for text in page.scripts:  # scripts loaded by inline code (the widget renderer's loader)
            for path in re.findall(r"""['"]([\w./-]+\.js)['"]""", text):
                if not urlparse(path).scheme and (out / path).is_file():
                    scripts.add((out / path).resolve())
    for script in sorted(scripts):
        problems.extend(f"{script.relative_to(out.resolve())}: loads font {font!r} -> missing"
                        for font in script_fonts(script) if not (script.parent / font).is_file())
    return problems


SCRIPT_URL = re.compile(r"""https?://[^\s"'`<>()]+?\.m?js\b""")


def external_scripts(out: Path) -> list[str]:
    """Scripts that pages in ``out`` load from the internet (``<script src="http...">``, or ``.js`` /
    ``.mjs`` addresses inside inline scripts): the site must work offline, so this must be empty."""
    found = []
    for page in sorted(out.glob("*.html")):
        parsed = _References(page)
        for kind, value in parsed.references:
            if kind == "script.src" and (urlparse(value).scheme in ("http", "https") or value.startswith("//")):
                found.append(f"{page.name}: <script src={value!r}>")
        for text in parsed.scripts:
            urls = sorted(set(SCRIPT_URL.findall(text)))
            found.extend(f"{page.name}: inline script loads {url!r}" for url in urls)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.site",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("site"))
    args = parser.parse_args(argv)
    if args.command == "build":
        pages = build(args.notebooks, args.out, repo_files=args.notebooks.resolve().parent)
        print(f"wrote {len(pages)} pages to {args.out}/ (open {args.out / 'index.html'})")
    problems = broken_references(args.out)
    if problems:
        print(f"{len(problems)} broken links, images, scripts or fonts:", *problems, sep="\n  ",
              file=sys.stderr)
        return 1
    external = external_scripts(args.out)
    if external:
        print(f"{len(external)} scripts come from the internet (the site must work offline):", *external,
              sep="\n  ", file=sys.stderr)
        return 1
    print("all local links, images, scripts and fonts resolve; no page loads a script from the internet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
