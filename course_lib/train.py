"""Command line for the metric-based meta-learners of notebook 03.

Trains a model with the same code the notebook runs
(:func:`course_lib.protonet.train_episodic`), shows progress, checkpoints
now and then, resumes from its last checkpoint, and evaluates the result
over many test episodes with 95% confidence intervals. A run folder holds:

* ``config.json``: the model's config plus how the run was made;
* ``checkpoint.pt``: weights, Adam's state, the step and the history
  (``--resume`` continues from it);
* ``history.json``: loss and training accuracy by step;
* ``results.json`` / ``results.md``: test accuracy ± 95% CI for 5-way 1-shot,
  5-way 5-shot, 20-way 1-shot and 20-way 5-shot, with the machine, device,
  steps and time.

Examples::

    python -m course_lib.train protonet --ways 60 --shots 5 --queries 5 --steps 20000 --out data/protonet
    python -m course_lib.train protonet --out data/protonet --resume          # continue an interrupted run
    python -m course_lib.train protonet --out data/protonet --eval-only       # evaluate the checkpoint
    python -m course_lib.train matching --ways 5 --shots 1 --queries 15 --out data/matching_nets
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import matching_nets, protonet
from .data import omniglot_splits
from .evaluation import format_accuracy
from .runtime import get_device, machine_description, seed_everything
from .training import write_json

METHODS = {
    "protonet": (protonet.ProtoNet, protonet.ProtoNetConfig, protonet.episode_loss),
    "matching": (matching_nets.MatchingNet, matching_nets.MatchingNetConfig, matching_nets.episode_loss),
}

PAPER = {  # Omniglot, Vinyals protocol (Snell et al. 2017, Table 1; Vinyals et al. 2016, Table 1)
    "protonet": {"5-way 1-shot": 0.988, "5-way 5-shot": 0.997, "20-way 1-shot": 0.960, "20-way 5-shot": 0.989},
    "matching": {"5-way 1-shot": 0.981, "5-way 5-shot": 0.989, "20-way 1-shot": 0.938, "20-way 5-shot": 0.985},
}

OPTION_NAMES = {  # command-line option -> config field
    "protocol": "protocol", "rotations": "rotations", "image_size": "image_size", "hidden": "hidden",
    "distance": "distance", "ways": "ways", "shots": "shots", "queries": "queries", "steps": "steps",
    "lr": "lr", "halve_every": "lr_halve_every", "seed": "seed", "channels_last": "channels_last",
    "temperature": "temperature",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("Examples::")[1],
    )
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--protocol", choices=("vinyals", "lake"))
    parser.add_argument("--rotations", action=argparse.BooleanOptionalAction, default=None,
                        help="rotations by 90 degrees as new classes (default: on for vinyals)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--hidden", type=int, help="channels of the Conv4 (64 in the papers)")
    parser.add_argument("--distance", choices=("euclidean", "cosine"))
    parser.add_argument("--temperature", type=float,
                        help="matching: softmax over cosine / temperature (the paper: 1.0)")
    parser.add_argument("--ways", type=int, help="training ways (ProtoNet paper: 60)")
    parser.add_argument("--shots", type=int, help="training shots")
    parser.add_argument("--queries", type=int, help="training queries per class")
    parser.add_argument("--steps", type=int, help="training episodes in total")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--halve-every", type=int, help="halve the learning rate every this many episodes")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--eval-only", action="store_true", help="only evaluate OUT/checkpoint.pt")
    parser.add_argument("--test-episodes", type=int, default=1000, help="test episodes per setting")
    parser.add_argument("--test-settings", default="5x1,5x5,20x1,20x5", help="WAYSxSHOTS,... to evaluate")
    parser.add_argument("--max-minutes", type=float, help="stop training (checkpointed) after this long")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--device", help="cpu, cuda, mps (default: automatic)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--smoke-data", action="store_true", help=argparse.SUPPRESS)  # tests: first classes only
    return parser


def config_from_args(args, config_class):
    """The config: stored one when resuming/evaluating, the defaults otherwise; options override."""
    path = args.out / "config.json"
    base = {}
    if (args.resume or args.eval_only) and path.is_file():
        base = json.loads(path.read_text())["config"]
    elif args.eval_only:
        raise SystemExit(f"--eval-only: no {path}; train first")
    for option, field in OPTION_NAMES.items():
        value = getattr(args, option)
        if value is not None:
            base[field] = value
    if "protocol" in base and base["protocol"] == "lake" and args.rotations is None and "rotations" not in base:
        base["rotations"] = False
    known = {f.name for f in dataclasses.fields(config_class)}
    for option, field in OPTION_NAMES.items():
        if getattr(args, option) is not None and field not in known:
            raise SystemExit(f"--{option.replace('_', '-')} does not apply to {args.method} "
                             f"(its settings: {', '.join(sorted(known))})")
    return config_class(**{k: v for k, v in base.items() if k in known})




def parse_settings(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(tuple(int(v) for v in item.split("x")) for item in text.split(",") if item)




def results_markdown(method: str, results: dict, config, meta: dict) -> str:
    lines = [
        f"# {method}: Omniglot ({config.protocol} split{', rotations' if config.rotations else ''}), "
        f"Conv4-{config.hidden}",
        "",
        f"Trained {meta['steps_done']} of {config.steps} episodes ({config.ways}-way {config.shots}-shot "
        f"{config.queries}-query, {config.distance}); evaluated on {meta['test_episodes']} test episodes per "
        f"setting (15 queries per class for 5-way, 5 for 20-way), on {meta['machine']['device']}.",
        "",
        "| setting | ours (95% CI) | paper |",
        "|---|---|---|",
    ]
    for name, entry in results.items():
        paper = PAPER.get(method, {}).get(name)
        lines.append(f"| {name} | {format_accuracy(entry['mean'], entry['ci95'])} | "
                     f"{'' if paper is None else f'{100 * paper:.1f} %'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_class, config_class, loss_fn = METHODS[args.method]
    config = config_from_args(args, config_class)
    device = get_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    splits = omniglot_splits(config.protocol, rotations=config.rotations, image_size=config.image_size)
    if args.smoke_data:
        splits = {k: v.subset_classes(range(min(40, v.num_classes))) for k, v in splits.items()}
    model = model_class(config)
    progress = not args.no_progress
    command = "python -m course_lib.train " + " ".join(sys.argv[1:] if argv is None else argv)
    record = {
        "method": args.method, "config": dataclasses.asdict(config), "command": command,
        "train_classes": splits["train"].num_classes, "test_classes": splits["test"].num_classes,
    }
    config_path = args.out / "config.json"
    if (args.resume or args.eval_only) and config_path.is_file():  # keep the original command, add this one
        previous = json.loads(config_path.read_text())
        record["command"] = previous.get("command", command)
        record["later_commands"] = previous.get("later_commands", []) + [command]
    write_json(config_path, record)

    started = time.time()
    if not args.eval_only:
        # SIGTERM (e.g. `kill PID`) checkpoints like Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            protonet.train_episodic(
                model, config, splits["train"], device=device, loss_fn=loss_fn, run_dir=args.out,
                resume=args.resume, checkpoint_seconds=60 * args.checkpoint_minutes,
                max_seconds=None if args.max_minutes is None else 60 * args.max_minutes, progress=progress,
                desc=f"{args.method} {config.ways}-way {config.shots}-shot",
            )
        except KeyboardInterrupt:
            print(f"stopped; resume with: python -m course_lib.train {args.method} --out {args.out} --resume",
                  file=sys.stderr)
            raise SystemExit(130)
    train_seconds = time.time() - started

    model, payload = protonet.load_trained(args.out, model_class, config_class, device=device)
    write_json(args.out / "history.json", payload["history"].state_dict())
    settings = parse_settings(args.test_settings)
    started = time.time()
    results = protonet.evaluate_model(model.predict, splits["test"], settings=settings,
                                      episodes=args.test_episodes, device=device, progress=progress)
    entries = {name: result.as_dict() for name, result in results.items()}
    meta = {
        "method": args.method,
        "steps_done": int(payload["step"] or 0),
        "config": dataclasses.asdict(config),
        "test_episodes": args.test_episodes,
        "test_queries_per_class": {f"{w}-way": protonet.test_queries(w) for w, _ in settings},
        "test_seed": 0,
        "machine": machine_description(device),
        "train_seconds_this_invocation": round(train_seconds, 1),
        "eval_seconds": round(time.time() - started, 1),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(args.out / "results.json", {"results": entries, "paper": PAPER.get(args.method, {}), **meta})
    (args.out / "results.md").write_text(results_markdown(args.method, entries, config, meta))
    for name, result in results.items():
        print(f"{args.method} {name}: {result}  (paper {100 * PAPER.get(args.method, {}).get(name, float('nan')):.1f} %)")
    return entries


if __name__ == "__main__":
    main()
