"""How far the shipped few-shot accuracies would move if one episode sampler drew every episode.

The course has two samplers (``course_lib.episodes``): ``EpisodeSampler`` (notebooks 00-02, 05,
the capstone) and ``FastEpisodeSampler`` (ProtoNet, Matching Networks and MAML: training, their
``results.json`` and notebooks 03-04). They draw from the same distribution but give other
episodes for the same seed. This script scores each shipped Omniglot run of the second group on
its stored test settings twice, with the same checkpoint, count and seed: once with the sampler
its ``results.json`` used (which must reproduce the stored number) and once with
``EpisodeSampler``. It prints a Markdown table; it writes nothing.

    COURSE_DATA_DIR=../shared/data python scripts/sampler_shift.py              # every run (about 80 min on one CPU thread)
    python scripts/sampler_shift.py --runs data/protonet --episodes 200        # a quick look
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

from course_lib import registry
from course_lib.episodes import EpisodeSampler, FastEpisodeSampler
from course_lib.evaluation import evaluate_few_shot
from course_lib.protonet import test_queries

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("protonet", "matching", "maml")  # the methods whose results.json used FastEpisodeSampler


def shipped_runs() -> list[str]:
    """The Omniglot run folders of those methods that this checkout has (the sinusoid runs have no episodes)."""
    folders = [run.folder for name in METHODS for run in registry.get(name).RUNS]
    return [f for f in folders if "sinusoid" not in f and (ROOT / f / "checkpoint.pt").is_file()]


def stored_settings(folder: str, method: str) -> dict[str, dict]:
    """``{"5-way 1-shot": stored entry}``. MAML's are those with the support set's batch statistics, what its
    predictor computes: named "... bn=support" when it trained with other statistics, else plainly."""
    stored = json.loads((ROOT / folder / "results.json").read_text())
    suffix = " bn=support" if method == "maml" and stored["config"]["bn"] != "support" else ""
    settings = [name for name in stored["results"] if "bn=" not in name]
    return {setting: stored["results"][setting + suffix] for setting in settings}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", help="run folders (default: every shipped one)")
    parser.add_argument("--episodes", type=int, help="test episodes per setting (default: as stored)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folders = args.runs or shipped_runs()
    print("| run | setting | stored | this script, FastEpisodeSampler | EpisodeSampler | shift (points) "
          "| shift (stored CIs) |\n|---|---|---|---|---|---|---|")
    for folder in folders:
        model, _ = registry.load(ROOT / folder)
        method_name = json.loads((ROOT / folder / "config.json").read_text())["method"]
        method = registry.get(method_name)
        data = method.load_data(model.config)
        predict = method.predictor(model)
        for setting, stored in stored_settings(folder, method_name).items():
            ways, shots = map(int, re.fullmatch(r"(\d+)-way (\d+)-shot", setting).groups())
            count = args.episodes or stored["episodes"]
            start = time.perf_counter()
            scores = [evaluate_few_shot(predict, sampler(data["test"], ways, shots, test_queries(ways)),
                                        count, seed=0, progress=False)
                      for sampler in (FastEpisodeSampler, EpisodeSampler)]
            fast, general = scores
            shift = general.mean - stored["mean"]
            print(f"| {folder} | {setting} | {100 * stored['mean']:.2f} ± {100 * stored['ci95']:.2f} % "
                  f"| {100 * fast.mean:.2f} % | {100 * general.mean:.2f} ± {100 * general.ci95:.2f} % "
                  f"| {100 * shift:+.2f} | {shift / stored['ci95']:+.2f} |", flush=True)
            print(f"  {folder} {setting}: {count} episodes each, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
