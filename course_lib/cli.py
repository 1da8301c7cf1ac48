"""One command line for every method: ``python -m course_lib train|eval METHOD ...``.

Examples::

    python -m course_lib list
    python -m course_lib train protonet --ways 60 --shots 5 --queries 5 --steps 20000 --out data/protonet
    python -m course_lib train protonet --out data/protonet --resume --steps 30000   # continue a run
    python -m course_lib eval protonet --out data/protonet --test-episodes 1000      # evaluate its checkpoint

The shared flags are defined here once; a method's own options are the fields
of its ``Config`` (``--lr-halve-every`` sets ``lr_halve_every``). Every option
is checked before any data is loaded or any file is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
import typing
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import registry
from .evaluation import format_accuracy
from .runs import (RENAMED_FIELDS, CheckpointMismatchError, History, RunError, RunFolder, load_checkpoint,
                   save_checkpoint, train_loop, with_added_defaults)
from .runtime import get_device, machine_description, seed_everything

SHARED = ("steps", "seed")  # Config fields that are shared flags
TEST_SETTINGS = "5x1,5x5,20x1,20x5"


class UsageError(SystemExit):
    """Exit status 2, as argparse's own errors; the message is printed to stderr first."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message
        print(message, file=sys.stderr)

    def __str__(self) -> str:
        return self.message


def parse_settings(text: str) -> tuple[tuple[int, int], ...]:
    """``"5x1,20x5" -> ((5, 1), (20, 5))``; a usage error for anything else."""
    settings = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise RunError(f"--test-settings: {item!r} is not WAYSxSHOTS with positive numbers (e.g. 5x1,20x5)")
        settings.append((int(parts[0]), int(parts[1])))
    return tuple(settings)


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


RENAMED_OPTIONS = {_option(old): _option(new) for old, new in RENAMED_FIELDS.items()}  # --lr -> --meta-lr


class _RenamedOption(argparse.Action):
    """A Config field's former option (``--lr``): a usage error that gives its name now (``--meta-lr``)."""

    def __init__(self, option_strings, dest, now: str, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.now = now

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        raise RunError(f"{option_string} is now called {self.now}: write {self.now} {values}")


def _add_config_options(parser: argparse.ArgumentParser, config_class) -> None:
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        how = ({"action": argparse.BooleanOptionalAction} if kind in (bool, typing.Optional[bool])
               else {"type": kind} if kind in (int, float, str) else None)
        if how is not None and field.name not in SHARED:
            parser.add_argument(_option(field.name), dest=field.name, default=None,
                                help=f"(default {field.default})", **how)
    names = {field.name for field in dataclasses.fields(config_class)}
    for old, new in RENAMED_FIELDS.items():  # without it, argparse would read --lr as --lr-halve-every
        if new in names and old not in names:
            parser.add_argument(_option(old), action=_RenamedOption, now=_option(new), help=argparse.SUPPRESS)


def build_parser(method: str | None = None, add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__.split("\n\n")[0],
                                     add_help=add_help,
                                     epilog=__doc__.split("Examples::")[1].split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("train", "eval", "list", "jobs"))
    parser.add_argument("method", nargs="?", choices=registry.names())
    shared = parser.add_argument_group("shared flags")
    shared.add_argument("--out", type=Path, help="the run folder")
    shared.add_argument("--steps", type=int, help="training steps in total (a resumed run may raise it)")
    shared.add_argument("--seed", type=int)
    shared.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    shared.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    shared.add_argument("--max-minutes", type=float, help="stop (checkpointed) after this long")
    shared.add_argument("--checkpoint-minutes", type=float, default=5.0)
    shared.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    shared.add_argument("--threads", type=int, help="torch CPU threads")
    shared.add_argument("--no-progress", action="store_true")
    shared.add_argument("--test-episodes", type=int, default=1000, help="test episodes per setting")
    shared.add_argument("--test-settings", default=TEST_SETTINGS, help="WAYSxSHOTS,... to evaluate")
    shared.add_argument("--smoke-data", action="store_true", help=argparse.SUPPRESS)  # tests: a few classes
    if method is not None:
        _add_config_options(parser.add_argument_group(f"{method} options"), registry.get(method).Config)
    return parser


def config_from_args(args, config_class, stored: dict | None = None):
    """The stored config (resume, eval; in today's field names) or the defaults, with the given options on top."""
    known = {field.name for field in dataclasses.fields(config_class)}
    values = {k: v for k, v in with_added_defaults(stored or {}, config_class).items() if k in known}
    values.update({k: getattr(args, k) for k in known if getattr(args, k, None) is not None})
    try:
        return config_class(**values)
    except (TypeError, ValueError) as error:
        raise RunError(f"{args.method}: {error}") from error


def _parse(argv):
    """Two passes: the method named first decides which options exist."""
    first, _ = build_parser(add_help=False).parse_known_args(argv)
    args = build_parser(first.method).parse_args(argv)
    if args.command in ("train", "eval") and (args.method is None or args.out is None):
        raise RunError(f"{args.command} needs a METHOD ({', '.join(registry.names())}) and --out FOLDER")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    try:
        args = _parse(argv)
        if args.command == "list":
            for name in registry.names():
                print(f"{name:12s} {registry.get(name).__doc__.splitlines()[0]}")
            return None
        if args.command == "jobs":
            for name, argv in jobs(args.out or Path("runs/full"), smoke=args.smoke_data):
                print(f"{name}\t{shlex.join(argv)}")
            return None
        command = "python -m course_lib " + shlex.join(sys.argv[1:] if argv is None else argv)
        return (train if args.command == "train" else evaluate)(args, command)
    except (RunError, CheckpointMismatchError) as error:
        raise UsageError(f"error: {error}") from None


def jobs(root: Path, smoke: bool = False) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every run with paper-scale options, its folder under ``root`` instead of ``data/``;
    ``smoke``: for a few steps on a few classes (scripts/train_all.sh with SMOKE=1)."""
    return [(run.name, ["python", "-m", "course_lib", "train", name,
                        "--out", str(Path(root) / Path(run.folder).relative_to("data")), *run.options,
                        *([*run.smoke, "--smoke-data"] if smoke else [])])
            for name in registry.names() for run in registry.get(name).RUNS if run.options]


def _prepare(args):
    """Check every option and the run folder; nothing is loaded or written yet."""
    method = registry.get(args.method)
    run = RunFolder(args.out)
    for name, lowest in (("steps", 0), ("test_episodes", 1), ("threads", 1), ("max_minutes", 0),
                         ("checkpoint_minutes", 0)):
        value = getattr(args, name)
        if value is not None and value < lowest:
            raise RunError(f"{_option(name)} must be {'positive' if lowest else '>= 0'}, got {value}")
    settings = parse_settings(args.test_settings)
    if args.command == "eval" and not run.checkpoint.is_file():
        raise RunError(f"eval: {args.out} holds no checkpoint.pt; train first")
    stored = run.stored_config() if (args.resume or args.command == "eval") and run.checkpoint.is_file() else None
    config = config_from_args(args, method.Config, stored)
    if args.command == "train":
        run.check(args.method, config, resume=args.resume, overwrite=args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    return method, run, config, settings, device


def train(args, command: str) -> dict:
    """Train METHOD in a run folder (new, resumed or replaced), then evaluate it."""
    method, run, config, settings, device = _prepare(args)
    seed_everything(config.seed)
    data = method.load_data(config, smoke=args.smoke_data)
    model = method.build(config).to(device)
    trainer = method.trainer(model, config, data, device)
    run.start(args.method, config, command, resume=args.resume, overwrite=args.overwrite)
    history, start = History(), 0
    if args.resume:
        payload = load_checkpoint(run.checkpoint, model, optimizer=trainer.optimizer, map_location=device,
                                  restore_rng=True)
        history, start = payload["history"], int(payload["step"] or 0)
        print(f"resuming {run.path} at step {start} of {config.steps}", file=sys.stderr)

    def save(steps_done: int, history: History) -> None:
        save_checkpoint(run.checkpoint, model, config, history=history, optimizer=trainer.optimizer,
                        step=steps_done)

    started = time.time()
    try:
        train_loop(trainer.step, config.steps, history=history, start_step=start, save=save,
                   checkpoint_seconds=60 * args.checkpoint_minutes,
                   max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                   desc=f"{args.method}: {method.describe(config)}", progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"stopped at step {history.steps_done}, checkpointed; continue with: "
              f"python -m course_lib train {args.method} --out {args.out} --resume", file=sys.stderr)
        raise SystemExit(130) from None
    run.write_history(history)
    seconds, steps = time.time() - started, (history.steps_done or start) - start
    timing = {"ms_per_step": round(1000 * seconds / steps, 2)} if steps and not start else {}  # the run's mean
    return _evaluate(args, method, run, config, settings, device, data, train_seconds=seconds, timing=timing)


def evaluate(args, command: str) -> dict:
    """Evaluate the checkpoint of a run folder on ``--test-episodes`` episodes per setting."""
    method, run, config, settings, device = _prepare(args)
    data = method.load_data(config, smoke=args.smoke_data)
    run.note_command(command)
    return _evaluate(args, method, run, config, settings, device, data, train_seconds=0.0)


def _evaluate(args, method, run: RunFolder, config, settings, device, data, train_seconds: float,
              timing: dict | None = None) -> dict:
    model = method.build(config)
    payload = load_checkpoint(run.checkpoint, model, map_location=device)
    model.to(device).eval()
    started = time.time()
    results = method.evaluate(model, config, data, device, settings=settings, episodes=args.test_episodes,
                              progress=not args.no_progress)
    entries = {name: getattr(result, "as_dict", lambda: result)() for name, result in results.items()}
    if not timing:  # eval, or a resumed run: keep the time per step measured by the invocation that began at step 0
        timing = {key: value for key, value in (run.results() or {}).items() if key == "ms_per_step"}
    meta = {"method": args.method, "steps_done": int(payload["step"] or 0), "config": dataclasses.asdict(config),
            "test_episodes": args.test_episodes,
            **getattr(method, "evaluation_details", lambda settings: {})(settings),
            "machine": machine_description(device), "train_seconds_this_invocation": round(train_seconds, 1),
            **(timing or {}),
            "eval_seconds": round(time.time() - started, 1),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    paper = paper_numbers(method, config)
    summary = getattr(method, "results_markdown", results_markdown)(method, entries, config, meta)
    run.write_results({"results": entries, "paper": paper, **meta}, summary)
    if not all(hasattr(result, "as_dict") for result in results.values()):  # not accuracies: print the summary
        print(summary)
    for name, result in results.items():
        if hasattr(result, "as_dict"):
            paper_value = paper.get(name)
            print(f"{args.method} {name}: {result}"
                  + ("" if paper_value is None else f"  (paper {100 * paper_value:.1f} %)"))
    return entries


def paper_numbers(method, config) -> dict:
    """The paper's numbers for this config: ``method.paper(config)`` where a method has variants, else PAPER."""
    return method.paper(config) if hasattr(method, "paper") else method.PAPER


def results_markdown(method, entries: dict, config, meta: dict) -> str:
    lines = [f"# {meta['method']}: {method.describe(config)}", "",
             f"Trained {meta['steps_done']} of {config.steps} steps; evaluated on {meta['test_episodes']} test "
             f"episodes per setting, on {meta['machine']['device']}.", "",
             "| setting | ours (95% CI) | paper |", "|---|---|---|"]
    for name, entry in entries.items():
        paper = paper_numbers(method, config).get(name)
        lines.append(f"| {name} | {format_accuracy(entry['mean'], entry['ci95'])} | "
                     f"{'' if paper is None else f'{100 * paper:.1f} %'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    main()
