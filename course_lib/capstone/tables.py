"""The capstone's record as tables (Markdown, CSV) and its two figures.

A *record* is what ``results.json`` holds: ``{"test_sets", "settings",
"episodes", "methods": {row: {"cells": {test_set: {setting: {mean, ci95,
episodes, seconds}}}, "trained_on", "variables", ...}}, ...}``.
"""

from __future__ import annotations

import csv
import io

from ..baselines import setting_name
from ..evaluation import format_accuracy
from .rows import SHARED_TRAINING_DATA
from .test_sets import QUERIES, queries_for


def columns(record: dict) -> list[tuple[str, str]]:
    return [(t, setting_name(*s)) for t in record["test_sets"] for s in map(tuple, record["settings"])]


def cell(record: dict, method: str, test_set: str, setting: str) -> dict | None:
    return record["methods"][method]["cells"].get(test_set, {}).get(setting)


def shared_training(record: dict) -> list[str]:
    """The rows meta-trained on the capstone's shared data, Omniglot's 30 background alphabets and nothing else
    (their ``trained_on`` begins with :data:`~course_lib.capstone.rows.SHARED_TRAINING_DATA`), in table order."""
    return [name for name, m in record["methods"].items() if m.get("trained_on", "").startswith(SHARED_TRAINING_DATA)]


def to_markdown(record: dict, methods=None) -> str:
    """The table (rows: ``methods``, default all of the record's, in its order; columns: test set x setting)."""
    cols = columns(record)
    lines = ["| method | " + " | ".join(f"{t} · {s}" for t, s in cols) + " |", "|---|" + "---|" * len(cols)]
    for method in (record["methods"] if methods is None else [m for m in methods if m in record["methods"]]):
        cells = []
        for t, s in cols:
            c = cell(record, method, t, s)
            cells.append("–" if c is None else format_accuracy(c["mean"], c["ci95"]) +
                         (f" ({c['episodes']} ep.)" if c["episodes"] != record["episodes"] else ""))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(record: dict) -> str:
    cols = columns(record)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["method"]
    for t, s in cols:
        header += [f"{t} | {s} | mean", f"{t} | {s} | ci95", f"{t} | {s} | episodes"]
    writer.writerow(header)
    for method in record["methods"]:
        row = [method]
        for t, s in cols:
            c = cell(record, method, t, s)
            row += ["", "", ""] if c is None else [f"{c['mean']:.6f}", f"{c['ci95']:.6f}", c["episodes"]]
        writer.writerow(row)
    return buffer.getvalue()


def read_csv(text: str) -> dict[str, dict[tuple[str, str], tuple[float, float, int]]]:
    """``{method: {(test set, setting): (mean, ci95, episodes)}}`` from :func:`to_csv`'s text."""
    rows = list(csv.reader(io.StringIO(text)))
    header, out = rows[0], {}
    for row in rows[1:]:
        cells = {}
        for i in range(1, len(header), 3):
            t, s, _ = (part.strip() for part in header[i].split("|"))
            if row[i]:
                cells[(t, s)] = (float(row[i]), float(row[i + 1]), int(row[i + 2]))
        out[row[0]] = cells
    return out


def results_markdown(record: dict) -> str:
    hardware = record["hardware"]
    lines = [
        "# Capstone: every method on the same episodes",
        "",
        f"Query accuracy, mean ± 95% CI over {record['episodes']} episodes per cell unless a cell says otherwise "
        f"({QUERIES} queries per class, {queries_for(10)} at 10 shots; identical episodes for every method, "
        "index lists in `episodes.npz`; – : the method cannot take that setting). "
        f"Written by `{record['command']}` (each method's own command is in `results.json`, `runs`) on "
        f"{hardware.get('cpu') or hardware['device']} ({hardware['device']}, {hardware['torch_threads']} torch "
        f"thread(s)), mode {record['mode']}.",
        "",
        to_markdown(record),
        "",
        f"**The same meta-training data.** The rows meta-trained on {SHARED_TRAINING_DATA} alphabets only "
        "(Lake's split, 964 characters; nothing else), with the untrained pixel nearest neighbour for reference:",
        "",
        to_markdown(record, ["pixel-nn", *shared_training(record)]),
        "",
        "| method | meta-trained on | learned / meta variables | seconds | note |",
        "|---|---|---|---|---|",
    ]
    for name, m in record["methods"].items():
        v = m["variables"]
        seconds = sum(c["seconds"] for row in m["cells"].values() for c in row.values())
        lines.append(f"| {name} | {m['trained_on']} | {v['learned_variables']:,} / {v['meta_parameters']:,} "
                     f"= {v['ratio_learned_per_meta']:.3g} ({v['setting']}) | {seconds:.0f} | {m['note']} |")
    if record.get("missing"):
        lines += ["", "Missing (not in the table): " + "; ".join(f"{k}: {v}" for k, v in record["missing"].items())]
    lines += ["", "Test sets: " + "; ".join(f"`{k}`: {v}" for k, v in record["test_set_descriptions"].items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The two figures
# --------------------------------------------------------------------------


def chance(setting: str) -> float:
    return 1.0 / int(setting.split("-")[0])


def in_distribution(record: dict, method: str) -> str:
    """The test set of a row's own meta-training domain: Omniglot, digits for VSML, MNIST for GPICL
    (and Omniglot for the learners that were not meta-trained at all, where the choice is arbitrary)."""
    return record["methods"][method].get("in_distribution", "omniglot")


def generality(record: dict, method: str, setting: str) -> dict | None:
    """In-distribution accuracy (:func:`in_distribution`), mean out-of-distribution accuracy (over the
    other test sets), and the share of above-chance accuracy kept, ``(ood - 1/N) / (id - 1/N)``."""
    home = in_distribution(record, method)
    ind = cell(record, method, home, setting)
    ood = [cell(record, method, t, setting) for t in record["test_sets"] if t != home]
    ood = [c for c in ood if c is not None]
    if ind is None or not ood:
        return None
    ood_mean = sum(c["mean"] for c in ood) / len(ood)
    base = chance(setting)
    kept = (ood_mean - base) / (ind["mean"] - base) if ind["mean"] - base > 1e-9 else float("nan")
    return {"in_distribution": ind["mean"], "out_of_distribution": ood_mean, "kept": kept, "test_sets": len(ood)}


def plot_generality(record: dict, axes=None):
    """Two panels: in- vs out-of-distribution accuracy, and the share kept vs the variable ratio (log x)."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    else:
        fig = axes[0].figure
    markers = {"5-way 1-shot": "o", "5-way 5-shot": "s", "2-way 1-shot": "^", "10-way 10-shot": "D"}
    shared = set(shared_training(record))
    colours = {}
    for name, m in record["methods"].items():
        colour = colours.setdefault(name, plt.cm.tab20(len(colours) % 20))
        edge = "black" if name in shared else "none"  # the rows on the shared meta-training data
        for setting in m["supported_settings"]:
            g = generality(record, name, setting)
            if g is None:
                continue
            axes[0].scatter(100 * g["in_distribution"], 100 * g["out_of_distribution"], color=colour,
                            marker=markers.get(setting, "x"), s=45, edgecolors=edge, linewidths=1.2,
                            label=name if setting == m["supported_settings"][0] else None)
        setting = m["variables"]["setting"]
        g = generality(record, name, setting)
        if g is not None:
            axes[1].scatter(m["variables"]["ratio_learned_per_meta"], g["kept"], color=colour,
                            marker=markers.get(setting, "x"), s=55, edgecolors=edge, linewidths=1.2)
            axes[1].annotate(name, (m["variables"]["ratio_learned_per_meta"], g["kept"]), fontsize=7,
                             xytext=(3, 3), textcoords="offset points")
    axes[0].plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="accuracy in distribution, % (Omniglot; VSML: digits, GPICL: MNIST)",
                ylabel="mean accuracy on the other four test sets, %",
                title="in vs out of distribution (o 5w1s, □ 5w5s, △ 2w1s, ◇ 10w10s;\n"
                      "black edge: meta-trained on the shared data, Omniglot background)")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set_xscale("log")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[1].axhline(0.0, color="grey", lw=0.8)
    axes[1].set(xlabel="variable ratio: learned variables / meta-parameters (log)",
                ylabel="share of above-chance accuracy kept out of distribution",
                title="structure vs generality")
    fig.tight_layout()
    return fig
