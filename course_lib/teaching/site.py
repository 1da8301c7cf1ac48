"""The executed course as a static website: ``python -m course_lib.teaching.site build``.

Converts every committed notebook (with the outputs of its last real run, and
the stored state of its widgets) to HTML with nbconvert, writes an index page
in course order, and then checks the result: every local link and image must
resolve, or the build fails with the list of what is broken.

    python -m course_lib.teaching.site build [--notebooks notebooks] [--out site]
    python -m course_lib.teaching.site check [--out site]

**The site works offline.** The scripts the pages need are shipped with it:
they are committed in ``course_lib/teaching/site_assets/vendor/``
(unmodified files from npm packages, each with its license; versions and
checksums in the README there) and copied to ``site/vendor/``, and every page loads them by
relative path:

* MathJax 3 (``mathjax/tex-svg-full.js``, Apache-2.0): one self-contained
  file, TeX input with every extension and SVG output, so no font files and
  no extension is fetched later. The page template
  (``site_assets/templates/course``, nbconvert's ``lab`` template otherwise)
  configures it for ``$...$`` and ``$$...$$`` as the notebooks write them;
* RequireJS and the ipywidgets renderer (``@jupyter-widgets/html-manager``),
  which draw the widgets from their stored state, with the Font Awesome icon
  fonts the renderer loads from its own folder (``woff2``, ``woff``, ``ttf``).

Every page carries its notebook's first heading as its title, links to the
index and to the previous and next notebook at its top and bottom, and,
where it shows widgets, a note that they are a static snapshot. Markers for
the notebook tests (``# NBVAL_CHECK_OUTPUT``) are left out of the code shown.

The template also leaves out nbconvert's Mermaid loader (an import from a
CDN): no notebook of the course has a Mermaid diagram.

Vendoring (about 6 MB) was chosen over a CDN (pages showed raw TeX offline
and in CI, which has no internet) and over an npm install at build time (a
second package manager in the install step, for three files). The check
fails on a missing local script, stylesheet or font as on a missing image,
and on any page that loads a script from an http(s) address.
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
# Fonts a bundled script loads from its own folder (webpack: ``__webpack_require__.p + "name.woff2"``).
# Only the formats current browsers ask for: .eot (old Internet Explorer) and .svg fonts are not shipped.
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


def navigation(entries: list[tuple[str, str]], position: int) -> dict:
    """Links of page ``position`` among ``entries`` (``(file name, title)`` in course order): index, previous, next."""
    previous = entries[position - 1] if position > 0 else None
    following = entries[position + 1] if position + 1 < len(entries) else None
    return {"index": "index.html", "previous": previous, "next": following}


def _rewrite_notebook_links(body: str) -> str:
    """Links between notebooks (``01_x.ipynb#part``) point to their HTML pages."""
    return re.sub(r'href="(\d\d_[a-z0-9_]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{m[1]}.html{m[2] or ""}"', body)


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
    notebooks_read = [nbformat.read(source, as_version=4) for source in sources]
    names = [(f"{source.stem}.html", notebook_title(notebook)) for source, notebook in zip(sources, notebooks_read)]
    entries = []
    for position, notebook in enumerate(notebooks_read):
        name, title = names[position]
        resources = {"metadata": {"name": title}, "course_nav": navigation(names, position),
                     "widget_assets_url": WIDGET_RENDERER.rsplit("/", 1)[0],
                     "course_snapshot_note": SNAPSHOT_NOTE if has_widgets(notebook) else ""}
        body, _ = exporter.from_notebook_node(without_test_markers(notebook), resources=resources)
        page = out / name
        page.write_text(_rewrite_notebook_links(body), encoding="utf-8")
        entries.append((page, title))
    # Images the notebooks link to by relative path (e.g. ../docs/images/x.png).
    if repo_files is not None and (repo_files / "docs" / "images").is_dir():
        shutil.copytree(repo_files / "docs" / "images", out / "images")
    items = "\n".join(
        f'      <li><a href="{page.name}">{html.escape(title)}</a></li>' for page, title in entries
    )
    (out / "index.html").write_text(
        f"""<!doctype html>
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
""",
        encoding="utf-8",
    )
    return [out / "index.html"] + [page for page, _ in entries]


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[tuple[str, str]] = []  # (tag.attribute, value)
        self.anchors: set[str] = set()
        self.scripts: list[str] = []  # the text of inline <script> elements
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("id", "name"):
            if attributes.get(name):
                self.anchors.add(attributes[name])
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


def broken_references(out: Path) -> list[str]:
    """Local links, anchors, images, scripts and stylesheets in ``out/*.html`` that do not resolve,
    and fonts that a local script loads from its folder that are missing (the widget renderer's icons)."""
    pages = sorted(out.glob("*.html"))
    parsed = {}
    for page in pages:
        parser = _References()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page.name] = parser
    problems = []
    scripts: set[Path] = set()
    for page in pages:
        for kind, value in parsed[page.name].references:
            if kind in ("img.src", "script.src") and not value:
                problems.append(f"{page.name}: <{kind.split('.')[0]}> without src")
                continue
            if value.startswith(("data:", "mailto:", "javascript:")):
                continue
            url = urlparse(value)
            if url.scheme in ("http", "https") or url.netloc:
                continue  # external: not checked offline
            target = page if not url.path else (page.parent / unquote(url.path)).resolve()
            if url.path and not target.exists():
                problems.append(f"{page.name}: {kind} {value!r} -> missing {target.name}")
                continue
            if url.fragment and target.suffix == ".html" and target.name in parsed:
                anchors = parsed[target.name].anchors  # browsers try the raw, then the decoded id
                if url.fragment not in anchors and unquote(url.fragment) not in anchors:
                    problems.append(f"{page.name}: {kind} {value!r} -> no anchor #{url.fragment}")
            if kind == "script.src" and target.suffix == ".js":
                scripts.add(target)
        for text in parsed[page.name].scripts:  # scripts loaded by inline code (the widget renderer's loader)
            for path in re.findall(r"""['"]([\w./-]+\.js)['"]""", text):
                if not urlparse(path).scheme and (page.parent / path).is_file():
                    scripts.add((page.parent / path).resolve())
    for script in sorted(scripts):
        for font in script_fonts(script):
            if not (script.parent / font).is_file():
                problems.append(f"{script.relative_to(out.resolve())}: loads font {font!r} -> missing")
    return problems


SCRIPT_URL = re.compile(r"""https?://[^\s"'`<>()]+?\.m?js\b""")


def external_scripts(out: Path) -> list[str]:
    """Scripts that pages in ``out`` load from the internet: ``<script src="http...">``, and
    ``.js`` / ``.mjs`` addresses inside inline scripts (loaded with ``import()`` or a created
    ``<script>``). The site must work offline, so this must be empty."""
    found = []
    for page in sorted(out.glob("*.html")):
        parser = _References()
        parser.feed(page.read_text(encoding="utf-8"))
        for kind, value in parser.references:
            if kind == "script.src" and (urlparse(value).scheme in ("http", "https") or value.startswith("//")):
                found.append(f"{page.name}: <script src={value!r}>")
        for text in parser.scripts:
            found.extend(f"{page.name}: inline script loads {url!r}" for url in sorted(set(SCRIPT_URL.findall(text))))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.teaching.site", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("site"))
    args = parser.parse_args(argv)
    if args.command == "build":
        pages = build(args.notebooks, args.out, repo_files=args.notebooks.resolve().parent)
        print(f"wrote {len(pages)} pages to {args.out}/ (open {args.out / 'index.html'})")
    problems = broken_references(args.out)
    if problems:
        print(f"{len(problems)} broken links, images, scripts or fonts:", *problems, sep="\n  ", file=sys.stderr)
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
