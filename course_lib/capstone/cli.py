"""The capstone's command line, ``python -m course_lib.capstone``: the results files and
``episodes.npz`` in ``--out``. Every option is checked before anything is loaded or written::

    python -m course_lib.capstone --episodes 1000 --out data/capstone
    python -m course_lib.capstone --methods protonet,pixel-nn --test-sets omniglot,mnist --episodes 200 \
        --out runs/capstone
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..runs import write_json
from ..runtime import get_device, get_mode, is_smoke, machine_description
from .rows import FULL_OUT, SMOKE_OUT, build_rows, row_names
from .running import assemble, run_rows, write_part
from .tables import results_markdown
from .test_sets import SETTINGS, TEST_SETS, load_episodes, save_episodes


def parse_list(text: str, allowed: list[str] | tuple[str, ...], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if items == ["all"]:
        return list(allowed)
    unknown = [x for x in items if x not in allowed]
    if unknown or not items:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(allowed)} (comma-separated) or 'all'")
    return items


def parse_episodes_for(items: list[str], rows: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, number = item.partition("=")
        if name not in rows or not number.isdigit() or int(number) < 2:
            raise ValueError(f"--episodes-for wants METHOD=N with a known method and N >= 2, got {item!r}")
        out[name] = int(number)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.capstone",
                                description="Every method of the course on the same episodes (notebook 09).")
    p.add_argument("--episodes", type=int, default=None, help="episodes per cell (default: 1000, smoke: 10)")
    p.add_argument("--episodes-for", action="append", default=[], metavar="METHOD=N",
                   help="fewer (or more) episodes for one slow method; the first N of the same list")
    p.add_argument("--methods", default="all", help="comma-separated rows (python -m course_lib.capstone --list), "
                                                    "or all")
    p.add_argument("--test-sets", default="all", help=f"comma-separated, from: {', '.join(TEST_SETS)}")
    p.add_argument("--settings", default="all",
                   help="comma-separated WAYSxSHOTS from: " + ", ".join(f"{w}x{k}" for w, k in SETTINGS)
                   + "; a method's cells of the other settings are kept from its earlier run")
    p.add_argument("--out", default=None, help="folder for results.json/.md/.csv and episodes.npz "
                   f"(default: {FULL_OUT} in full mode, {SMOKE_OUT} in smoke mode)")
    p.add_argument("--root", type=Path, default=None,
                   help="the checkout whose data/ holds the runs (default: this one)")
    p.add_argument("--device", default="cpu", help="cpu (default; the shipped results), cuda, mps")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--assemble", action="store_true", help="only rebuild the tables from out/parts/*.json")
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def output_folder(out: str | None, mode: str) -> Path:
    """Where this run writes; a usage error where smoke results would replace full-mode ones."""
    folder = Path(out if out is not None else (SMOKE_OUT if mode == "smoke" else FULL_OUT))
    if mode == "smoke":
        for path in [folder / "results.json", *sorted((folder / "parts").glob("*.json"))]:
            if path.is_file() and json.loads(path.read_text()).get("mode") == "full":
                raise ValueError(f"{path} holds full-mode results and this is a smoke run (COURSE_MODE=smoke): "
                                 f"write smoke results elsewhere with --out (default {SMOKE_OUT})")
    return folder


def validate(args) -> tuple[list[str], list[str], list[tuple[int, int]], dict[str, int], int]:
    names = row_names()
    rows = parse_list(args.methods, names, "method(s)")
    test_sets = parse_list(args.test_sets, TEST_SETS, "test set(s)")
    by_name = {f"{w}x{k}": (w, k) for w, k in SETTINGS}
    settings = [by_name[n] for n in parse_list(args.settings, tuple(by_name), "setting(s)")]
    episodes_for = parse_episodes_for(args.episodes_for, names)
    episodes = args.episodes if args.episodes is not None else (10 if is_smoke() else 1000)
    if episodes < 2:
        raise ValueError(f"--episodes must be >= 2 (a CI needs two episodes), got {episodes}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    return rows, test_sets, settings, episodes_for, episodes


def main(argv: list[str] | None = None) -> dict | None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(row_names()))
        return None
    try:  # every check before anything is loaded or written
        names, test_sets, settings, episodes_for, episodes = validate(args)
        device = get_device(args.device)
        out = output_folder(args.out, get_mode())
    except (ValueError, RuntimeError) as error:
        parser.error(str(error))
    command = "python -m course_lib.capstone " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.assemble:
        return assemble(out, command)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, missing = build_rows(names, device, out, smoke=is_smoke(), progress=not args.no_progress, root=args.root)
    path = out / "episodes.npz"
    pools, lists = {}, load_episodes(path) if path.is_file() else {}
    for name in missing:
        (out / "parts" / f"{name}.json").unlink(missing_ok=True)
    known = json.loads((out / "missing.json").read_text()) if (out / "missing.json").is_file() else {}
    write_json(out / "missing.json", {**{k: v for k, v in known.items() if k not in names}, **missing})
    hardware, record = machine_description(device), None
    for row in rows:  # one row at a time: its results are written as soon as it is done
        result = run_rows([row], test_sets, settings, episodes, episodes_for, pools, lists,
                          progress=not args.no_progress)[row.name]
        if path.is_file():  # another run may have written more lists meanwhile: keep the union
            stored = load_episodes(path)
            lists.update({k: v for k, v in stored.items() if k not in lists or len(v) > len(lists[k])})
        save_episodes(path, lists)
        write_part(out, row.name, result, mode=get_mode(), episodes=episodes, command=command, hardware=hardware)
        record = assemble(out, command)
    if record is None:
        record = assemble(out, command)
    print(results_markdown(record))
    return record
