"""The capstone's record (what ``results.json`` holds: ``{"test_sets", "settings", "episodes", "methods":
{row: {"cells": {test_set: {setting: {mean, ci95, episodes, seconds}}}, ...}}, ...}``) as tables
(Markdown, CSV), the measures of generalisation, and its two figures.

Generalisation is measured against the pixel nearest neighbour on the same episodes (the gain over
pixels) and by the accuracy a row loses when the pixels are permuted; both are differences of two
cells, so neither rewards a row for doing badly in distribution."""

from __future__ import annotations

import csv
import io
import math

from ..baselines import setting_name
from ..evaluation import format_accuracy
from .rows import SHARED_TRAINING_DATA
from .test_sets import QUERIES, base_of, queries_for


def columns(record: dict) -> list[tuple[str, str]]:
    return [(t, setting_name(*s)) for t in record["test_sets"] for s in map(tuple, record["settings"])]


def cell(record: dict, method: str, test_set: str, setting: str) -> dict | None:
    return record["methods"][method]["cells"].get(test_set, {}).get(setting)


def cell_text(c: dict | None, episodes: int) -> str:
    """A cell as the tables show it: mean ± 95% CI, and its episodes where they are not the record's."""
    if c is None:
        return "–"
    return format_accuracy(c["mean"], c["ci95"]) + (f" ({c['episodes']:,} ep.)" if c["episodes"] != episodes else "")


def shared_training(record: dict) -> list[str]:
    """The rows meta-trained on the capstone's shared data, Omniglot's 30 background alphabets and nothing else
    (their ``trained_on`` begins with :data:`~course_lib.capstone.rows.SHARED_TRAINING_DATA`), in table order."""
    return [name for name, m in record["methods"].items() if m.get("trained_on", "").startswith(SHARED_TRAINING_DATA)]


def to_markdown(record: dict, methods=None) -> str:
    """The table (rows: ``methods``, default all of the record's, in its order; columns: test set x setting)."""
    cols = columns(record)
    lines = ["| method | " + " | ".join(f"{t} · {s}" for t, s in cols) + " |", "|---|" + "---|" * len(cols)]
    for method in (record["methods"] if methods is None else [m for m in methods if m in record["methods"]]):
        cells = [cell_text(cell(record, method, t, s), record["episodes"]) for t, s in cols]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(record: dict) -> str:
    cols = columns(record)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", *(f"{t} | {s} | {part}" for t, s in cols for part in ("mean", "ci95", "episodes"))])
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
        "# Capstone: every method on the same episodes", "",
        f"Query accuracy, mean ± 95% CI over {record['episodes']} episodes per cell unless a cell says otherwise "
        f"({QUERIES} queries per class, {queries_for(10)} at 10 shots; identical episodes for every method, "
        "index lists in `episodes.npz`; – : the method cannot take that setting). "
        f"Written by `{record['command']}` (each method's own command is in `results.json`, `runs`) on "
        f"{hardware.get('cpu') or hardware['device']} ({hardware['device']}, {hardware['torch_threads']} torch "
        f"thread(s)), mode {record['mode']}.", "",
        to_markdown(record), "",
        f"**The same meta-training data.** The rows meta-trained on {SHARED_TRAINING_DATA} alphabets only "
        "(Lake's split, 964 characters; nothing else), with the untrained pixel nearest neighbour for "
        "reference:", "",
        to_markdown(record, ["pixel-nn", *shared_training(record)]), "",
        "| method | meta-trained on | learned / meta variables | seconds | note |", "|---|---|---|---|---|",
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


def chance(setting: str) -> float:
    return 1.0 / int(setting.split("-")[0])


def in_distribution(record: dict, method: str) -> str:
    """The test set of a row's own meta-training domain: Omniglot, digits for VSML, MNIST for GPICL
    (and Omniglot for the learners that were not meta-trained at all, where the choice is arbitrary)."""
    return record["methods"][method].get("in_distribution", "omniglot")


REFERENCE = "pixel-nn"  # the pixel-space learner: no meta-training, blind to a pixel permutation


def difference(a: dict, b: dict) -> dict:
    """``a - b`` for two cells, with the 95% half-width ``sqrt(ci_a² + ci_b²)`` of independent estimates.

    The two cells share their episodes, and an episode hard for one row is usually hard for the other,
    so this half-width is, if anything, wider than the paired one.
    """
    return {"mean": a["mean"] - b["mean"], "ci95": math.hypot(a["ci95"], b["ci95"])}


def average(differences: list[dict]) -> dict | None:
    """The mean of several differences, its half-width that of a mean of independent estimates."""
    if not differences:
        return None
    k = len(differences)
    return {"mean": sum(d["mean"] for d in differences) / k,
            "ci95": math.sqrt(sum(d["ci95"] ** 2 for d in differences)) / k}


def gain_over_pixels(record: dict, method: str, test_set: str, setting: str, reference: str = REFERENCE) -> dict | None:
    """Accuracy above the pixel nearest neighbour's, same test set and episodes: what meta-training added
    to a learner that learned nothing (negative: the row does worse than no meta-learning at all)."""
    a, b = cell(record, method, test_set, setting), cell(record, reference, test_set, setting)
    return None if a is None or b is None else difference(a, b)


def permutation_drop(record: dict, method: str, test_set: str, setting: str) -> dict | None:
    """Accuracy lost when the pixels of ``test_set`` are permuted: what the row owed to where pixels are.
    A pixel-space learner loses exactly nothing (the permutation keeps every distance)."""
    a, b = cell(record, method, test_set, setting), cell(record, method, f"{test_set}-permuted", setting)
    return None if a is None or b is None else difference(a, b)


def generalisation(record: dict, method: str, setting: str | None = None, reference: str = REFERENCE) -> dict:
    """One row's gain over pixels in distribution, on the other unpermuted test sets (new datasets) and on
    the permuted ones (a new input structure), and its permutation drop; ``setting`` defaults to the row's
    own (5-way 1-shot, or 2-way 1-shot where that is all it takes)."""
    setting = setting or record["methods"][method]["variables"]["setting"]
    home = in_distribution(record, method)
    bases = [t for t in record["test_sets"] if base_of(t) == t]
    permuted = [t for t in record["test_sets"] if base_of(t) != t]

    def gains(test_sets):
        return average([g for t in test_sets if (g := gain_over_pixels(record, method, t, setting, reference))])

    return {"setting": setting, "home": home,
            "in_distribution": gains([home]),
            "new_datasets": gains([t for t in bases if t != home]),
            "new_structure": gains(permuted),
            "permutation_drop": average([d for t in permuted
                                         if (d := permutation_drop(record, method, base_of(t), setting))])}


def per_test_set_markdown(record: dict, test_set: str, methods=None) -> str:
    """One test set's table: a row per method, a column per setting, and the gain over pixels at 5-way
    1-shot (or the row's own setting), in points."""
    settings = [setting_name(*s) for s in map(tuple, record["settings"])]
    lines = ["| method | " + " | ".join(settings) + " | vs. pixels (points) |", "|---|" + "---|" * (len(settings) + 1)]
    for method in (record["methods"] if methods is None else [m for m in methods if m in record["methods"]]):
        own = record["methods"][method]["variables"]["setting"]
        gain = gain_over_pixels(record, method, test_set, own)
        gain_text = ("reference" if method == REFERENCE else "–" if gain is None else
                     f"{100 * gain['mean']:+.1f} ± {100 * gain['ci95']:.1f}" + (f" ({own})" if own != settings[0] else ""))
        meta_trained = record["methods"][method].get("trained_on") != "nothing"
        home = " (in distribution)" if meta_trained and in_distribution(record, method) == test_set else ""
        lines.append(f"| {method}{home} | " + " | ".join(cell_text(cell(record, method, test_set, s), record["episodes"])
                                                          for s in settings) + f" | {gain_text} |")
    return "\n".join(lines)


def plot_heatmap(record: dict, settings=("5-way 1-shot", "2-way 1-shot"), reference: str = REFERENCE):
    """Methods x test sets, one panel per setting: the accuracy in each cell, coloured by the points above
    (blue) or below (red) the pixel nearest neighbour on the same episodes. Rows on the shared meta-training
    data are marked with •."""
    import matplotlib.pyplot as plt
    import numpy as np

    methods, test_sets, shared = list(record["methods"]), record["test_sets"], set(shared_training(record))
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings) + 1, 0.36 * len(methods) + 1.4),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, setting in zip(axes[0], settings):
        gains = np.full((len(methods), len(test_sets)), np.nan)
        for i, method in enumerate(methods):
            for j, test_set in enumerate(test_sets):
                g, c = gain_over_pixels(record, method, test_set, setting, reference), cell(record, method, test_set, setting)
                if g is not None:
                    gains[i, j] = 100 * g["mean"]
                dark = g is not None and abs(g["mean"]) > 0.3
                ax.text(j, i, "–" if c is None else f"{100 * c['mean']:.1f}", ha="center", va="center", fontsize=9,
                        color="grey" if c is None else "white" if dark else "black")
        image = ax.imshow(gains, cmap="RdBu", vmin=-50, vmax=50, aspect="auto")
        ax.set_xticks(range(len(test_sets)), [t.replace("-", "-\n") for t in test_sets], fontsize=9)
        ax.set_yticks(range(len(methods)), [m + (" •" if m in shared else "") for m in methods], fontsize=9)
        ax.set_title(f"{setting}: accuracy, %", fontsize=10)
        ax.set_xlabel("test set", fontsize=9)
    fig.suptitle("• meta-trained on the shared data, Omniglot's background alphabets; –: setting not taken",
                 fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, pad=0.02,
                 label=f"accuracy − {reference}, points (same episodes)")
    return fig


FAMILY_COLOURS = {"hand-designed": "grey", "pretrained": "tab:brown", "metric": "tab:blue",
                  "optimization": "tab:orange", "black-box": "tab:purple"}
MARKERS = "osD^vPX*"


def plot_generalisation(record: dict, methods=None, setting: str = "2-way 1-shot", reference: str = REFERENCE):
    """Two panels, one point per row: the gain over pixels in distribution against the gain on permuted pixels
    (what structure buys and what it costs), and the variable ratio against the permutation drop (does the
    ratio predict it?). ``methods`` default: the reference and the rows on the shared data; ``setting``
    default: the one every row takes."""
    import matplotlib.pyplot as plt

    methods = methods or [reference, *shared_training(record)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
    used: dict[str, int] = {}
    for name in methods:
        m, g = record["methods"][name], generalisation(record, name, setting, reference)
        if None in (g["in_distribution"], g["new_structure"], g["permutation_drop"]):
            continue
        family = m["family"].split()[0]
        style = dict(color=FAMILY_COLOURS.get(family, "black"), marker=MARKERS[used.get(family, 0) % len(MARKERS)],
                     s=60, edgecolors="black", linewidths=0.6)
        used[family] = used.get(family, 0) + 1
        axes[0].scatter(100 * g["in_distribution"]["mean"], 100 * g["new_structure"]["mean"], label=name, **style)
        axes[1].scatter(m["variables"]["ratio_learned_per_meta"], 100 * g["permutation_drop"]["mean"], **style)
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.8)
    axes[0].axvline(0, color="grey", lw=0.8)
    axes[0].set(xlabel=f"accuracy − {reference} in distribution, points",
                ylabel=f"accuracy − {reference} on permuted pixels, points",
                title=f"what structure buys, and what it costs ({setting})")
    axes[1].set_xscale("log")
    axes[1].set(xlabel="variable ratio: learned variables per meta-parameter (log)",
                ylabel="accuracy lost when the pixels are permuted, points",
                title=f"does the variable ratio predict the drop? ({setting})")
    fig.legend(loc="lower center", ncol=4, fontsize=9, frameon=False,
               title="colour: family (grey: hand-designed, brown: pretrained, blue: metric, orange: MAML family, "
                     "purple: black box)", title_fontsize=9)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig
