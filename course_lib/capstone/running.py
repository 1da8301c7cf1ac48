"""Running the capstone: every row on every cell (test set x setting), and the files a run leaves.

Each row's results go to ``parts/<row>.json`` as soon as it is done (keeping
its earlier cells of other settings, :func:`merge_part`); :func:`assemble`
puts every part, from any command, into ``results.json`` / ``.md`` / ``.csv``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..baselines import setting_name
from ..data import LabelledImages
from ..evaluation import AccuracyResult, episode_accuracy, mean_confidence_interval
from ..runs import write_json, write_text
from ..runtime import progress_bar
from .rows import Row, row_names
from .tables import results_markdown, to_csv
from .test_sets import (DESCRIPTIONS, PERMUTATION_SEED, SETTINGS, TEST_SETS, EpisodeIndices, draw_episodes,
                        episode_seed, episodes_key, load_test_set, queries_for)


def evaluate_cell(row: Row, pool: LabelledImages, episodes: EpisodeIndices, count: int, seed: int,
                  progress: bool = False, desc: str = "") -> tuple[AccuracyResult, float, list[float]]:
    """Accuracy of ``row`` on the first ``count`` episodes; returns (result, seconds, per-episode)."""
    row.reset(seed)
    start = time.perf_counter()
    accuracies = [episode_accuracy(row.predict, episodes.episode(pool, i))
                  for i in progress_bar(range(min(count, len(episodes))), desc=desc, disable=not progress,
                                        leave=False)]
    seconds = time.perf_counter() - start
    mean, ci = mean_confidence_interval(accuracies)
    return AccuracyResult(mean, ci, len(accuracies)), seconds, accuracies


def run_rows(rows: list[Row], test_sets=TEST_SETS, settings=SETTINGS, episodes: int = 1000,
             episodes_for: dict[str, int] | None = None, pools: dict | None = None,
             episode_lists: dict | None = None, progress: bool = True) -> dict:
    """``{row: {"cells": {test_set: {setting: {mean, ci95, episodes, seconds}}}, ...}}``, every row on the
    same index lists (drawn once per base test set and setting, kept in ``episode_lists``);
    ``episodes_for`` gives a slow row fewer (the first N of the same lists)."""
    episodes_for = episodes_for or {}
    pools = pools if pools is not None else {}
    episode_lists = episode_lists if episode_lists is not None else {}
    needed = max([episodes, *episodes_for.values()])
    for test_set in test_sets:
        if test_set not in pools:
            pools[test_set] = load_test_set(test_set)
        for ways, shots in settings:
            key = episodes_key(test_set, ways, shots)
            if key not in episode_lists or len(episode_lists[key]) < needed:
                episode_lists[key] = draw_episodes(pools[test_set], ways, shots, needed,
                                                   episode_seed(test_set, ways, shots), queries_for(shots))
    results = {}
    for row in rows:
        supported, cells = [s for s in settings if row.supports(*s)], {}
        for test_set in test_sets:
            for ways, shots in supported:
                name, key = setting_name(ways, shots), episodes_key(test_set, ways, shots)
                result, seconds, _ = evaluate_cell(row, pools[test_set], episode_lists[key],
                                                   episodes_for.get(row.name, episodes),
                                                   episode_seed(test_set, ways, shots), progress,
                                                   desc=f"{row.name} {test_set} {name}")
                cells.setdefault(test_set, {})[name] = {**result.as_dict(), "seconds": seconds}
        results[row.name] = {"trained_on": row.trained_on, "family": row.family, "note": row.note,
                             "supported_settings": [setting_name(*s) for s in supported],
                             "variables": row.variables(*(supported or settings)[0]),
                             "in_distribution": row.in_distribution, "cells": cells}
    return results


def merge_part(old: dict | None, new: dict) -> dict:
    """A row's new results on top of its earlier part: cells the new run did not evaluate are kept
    (with the earlier command listed), so one setting can be added without rerunning the others."""
    if old is None or old.get("mode") != new["mode"]:
        return new
    cells = {t: dict(row) for t, row in old["result"]["cells"].items()}
    for test_set, row in new["result"]["cells"].items():
        cells.setdefault(test_set, {}).update(row)
    either = set(old["result"].get("supported_settings", [])) | set(new["result"].get("supported_settings", []))
    supported = [setting_name(*s) for s in SETTINGS if setting_name(*s) in either]
    earlier = old.get("earlier_commands", []) + [old["command"]]
    return {**new, "result": {**new["result"], "cells": cells, "supported_settings": supported,
                              "variables": old["result"].get("variables", new["result"]["variables"])},
            "earlier_commands": earlier}


def write_part(out: Path, name: str, result: dict, *, mode: str, episodes: int, command: str, hardware: dict) -> Path:
    """``out/parts/<name>.json``: one row's results of this run, merged into its earlier part (:func:`merge_part`)."""
    path = out / "parts" / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else None
    return write_json(path, merge_part(old, {
        "method": name, "result": result, "mode": mode, "episodes": episodes, "command": command,
        "hardware": hardware, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))


def assemble(out: Path, command: str) -> dict:
    """results.json / .md / .csv from every ``out/parts/<row>.json`` (one per row, any run)."""
    parts = sorted((out / "parts").glob("*.json"))
    if not parts:
        raise FileNotFoundError(f"no results in {out / 'parts'}: run the capstone first")
    loaded = [json.loads(p.read_text()) for p in parts]
    order = {name: i for i, name in enumerate(row_names())}
    loaded.sort(key=lambda r: order.get(r["method"], len(order)))
    first = loaded[0]
    test_sets = [t for t in TEST_SETS if any(t in r["result"]["cells"] for r in loaded)]
    settings = [list(s) for s in SETTINGS
                if any(setting_name(*s) in c for r in loaded for c in r["result"]["cells"].values())]
    missing_path = out / "missing.json"
    missing = json.loads(missing_path.read_text()) if missing_path.is_file() else {}
    rows = {r["method"]: {"in_distribution": "omniglot", **r["result"]} for r in loaded}
    missing = {name: reason for name, reason in missing.items() if name not in rows}
    record = {
        "command": command, "mode": first["mode"], "episodes": first["episodes"],
        "queries_per_class": {setting_name(*s): queries_for(s[1]) for s in settings},
        "settings": settings, "test_sets": test_sets, "hardware": first["hardware"],
        "episode_seeds": {episodes_key(t, *s): episode_seed(t, *s) for t in test_sets for s in map(tuple, settings)},
        "permutation_seed": PERMUTATION_SEED, "episodes_file": "episodes.npz",
        "test_set_descriptions": {t: DESCRIPTIONS[t] for t in test_sets},
        "methods": rows, "missing": missing,
        "runs": [{"method": r["method"], "command": r["command"], "earlier_commands": r.get("earlier_commands", []),
                  "hardware": r["hardware"], "finished": r["finished"]} for r in loaded],
    }
    write_json(out / "results.json", record)
    write_text(out / "results.md", results_markdown(record))
    write_text(out / "results.csv", to_csv(record))
    return record
