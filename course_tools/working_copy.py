"""The student's working copies of the notebooks: what ``make course`` opens.

    python -m course_tools.working_copy [--notebooks notebooks] [--work work]

The notebooks in ``notebooks/`` keep the outputs of the reference run (the
site and the tests read them), so ``make course`` copies them into ``work/``
(ignored by git) and opens ``work/00_welcome.ipynb``. A notebook already in
``work/`` is the student's and is never overwritten: delete it to start
afresh. ``work/`` sits beside ``notebooks/``, so relative links and
:func:`course_lib.runtime.repo_root` work as in the originals; its
``jupytext.toml`` keeps JupyterLab from pairing the copies with ``.py`` files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
JUPYTEXT_CONFIG = "jupytext.toml"
UNPAIRED = '# The working copies are plain notebooks: no .py pair beside them.\nformats = "ipynb"\n'


def copy_notebooks(notebooks: Path, work: Path) -> list[Path]:
    """Copy each ``NN_slug.ipynb`` of ``notebooks`` that ``work`` lacks (leaving the others exactly as they
    are); return the copies made."""
    sources = sorted(Path(notebooks).glob(NOTEBOOK_GLOB))
    if not sources:
        raise FileNotFoundError(f"no notebooks named NN_slug.ipynb in {notebooks}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / JUPYTEXT_CONFIG).exists():
        (work / JUPYTEXT_CONFIG).write_text(UNPAIRED, encoding="utf-8")
    made = []
    for source in sources:
        target = work / source.name
        if target.exists():
            continue
        notebook = json.loads(source.read_text(encoding="utf-8"))
        notebook.get("metadata", {}).pop("jupytext", None)  # a copy, not one half of a pair
        with open(target, "x", encoding="utf-8") as handle:  # "x": never replace a file that appeared meanwhile
            json.dump(notebook, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        made.append(target)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.working_copy",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--work", type=Path, default=Path("work"))
    args = parser.parse_args(argv)
    made = copy_notebooks(args.notebooks, args.work)
    kept = len(list(args.work.glob(NOTEBOOK_GLOB))) - len(made)
    print(f"{args.work}/: {len(made)} notebooks copied from {args.notebooks}/"
          + (f", {kept} of your own kept as they are" if kept else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
