"""Convert shipped runs to today's run-folder layout, once: ``python scripts/convert_runs.py`` (or only the
conversions named: ``python scripts/convert_runs.py convert_meta_lr``).

Each conversion is a function of the repository root that does what is left
to do and nothing else, so running the script again changes nothing. Files
are moved with ``git mv`` (their history follows them) and rewritten
atomically; no number of a shipped result is recomputed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_lib.runs import CHECKPOINT_FORMAT, read_checkpoint, write_json, write_text  # noqa: E402


def move(root: Path, old: Path, new: Path) -> bool:
    """``git mv old new`` (a plain rename outside git); False when there is nothing to move."""
    if not old.is_file() or new.exists():
        return False
    new.parent.mkdir(parents=True, exist_ok=True)
    moved = subprocess.run(["git", "mv", str(old.relative_to(root)), str(new.relative_to(root))], cwd=root,
                           capture_output=True).returncode == 0
    if not moved:
        old.replace(new)
    print(f"moved {old.relative_to(root)} -> {new.relative_to(root)}")
    return True


def save_payload(path: Path, payload: dict) -> None:
    from course_lib.runs import atomic_write

    atomic_write(path, lambda temporary: torch.save(payload, temporary))


def renamed(config: dict, old: str, new: str) -> dict:
    """``config`` with key ``old`` renamed to ``new``, in the same place."""
    return {(new if key == old else key): value for key, value in config.items()}


def flag(name: str, value) -> str:
    option = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return option if value else "--no-" + option[2:]
    return f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"


# --------------------------------------------------------------------------
# Notebook 05: data/black_box/*.pt -> data/black_box/NAME/ (sequence learners and RL²)
# --------------------------------------------------------------------------

SEQUENCE_NAMES = {"lstm": "LSTM", "mann": "LSTM + matching read-out", "transformer": "in-context transformer"}
PLATEAU = {  # file name -> the command that wrote it (data/black_box/README.md)
    "transformer_2way_1shot_embed_norm": "python -m course_lib.sequence_learners --model transformer --ways 2 "
    "--shots 1 --steps 20000 --embed-norm --checkpoint data/black_box/plateau/transformer_2way_1shot_embed_norm.pt",
    "transformer_4way_1shot_seed0": "python -m course_lib.sequence_learners --model transformer --ways 4 --shots 1 "
    "--steps 10000 --checkpoint data/black_box/plateau/transformer_4way_1shot_seed0.pt",
    "lstm_2way_1shot_long": "python -m course_lib.sequence_learners --model lstm --ways 2 --shots 1 --steps 20000 "
    "--checkpoint data/black_box/plateau/lstm_2way_1shot_long.pt --max-minutes 30",
}
RL2 = {  # file name -> the command that wrote it (data/black_box/README.md)
    "rl2_independent5_T10": "python -m course_lib.bandits --task independent --arms 5 --horizon 10 --iterations 10000 "
    "--checkpoint data/black_box/rl2_independent5_T10.pt",
    "rl2_dependent2_T10": "python -m course_lib.bandits --task dependent --arms 2 --horizon 10 --iterations 1500 "
    "--checkpoint data/black_box/rl2_dependent2_T10.pt",
    "rl2_dependent2_T100": "python -m course_lib.bandits --task dependent --arms 2 --horizon 100 --iterations 3000 "
    "--lr 0.001 --value-scale 10 --checkpoint data/black_box/rl2_dependent2_T100.pt",
}
CONVERTED = ("converted by scripts/convert_runs.py from the single checkpoint file {old}; `command` wrote it, "
             "`command_now` trains the same config with today's command line (its task stream is drawn per "
             "step, so it trains a new sample of the same run, not these exact weights)")


def sequence_command(config: dict, out: str) -> str:
    flags = [flag(k, config[k]) for k in ("model", "ways", "shots", "steps")]
    flags += [flag("seed", config["seed"])] if config["seed"] else []
    flags += ["--embed-norm"] if config["embed_norm"] else []
    return f"python -m course_lib train sequence {' '.join(flags)} --out {out}"


def rl2_command(config: dict, out: str) -> str:
    config = renamed(config, "lr", "meta_lr")  # a checkpoint's config keeps the name it was saved with
    flags = [flag(k, config[k]) for k in ("task", "arms", "horizon", "steps")]
    flags += [flag(k, config[k]) for k, default in (("meta_lr", 3e-3), ("value_scale", 1.0)) if config[k] != default]
    return f"python -m course_lib train rl2 {' '.join(flags)} --out {out}"


def convert_checkpoint_file(root: Path, old: str, folder: str, method: str, command: str, now) -> None:
    """``old`` (a course_lib.runs checkpoint) -> ``folder``/checkpoint.pt + config.json + history.json."""
    target = root / folder
    move(root, root / old, target / "checkpoint.pt")
    if not (target / "checkpoint.pt").is_file():
        return
    payload = read_checkpoint(target / "checkpoint.pt")
    if "iterations" in payload["config"]:  # RL²'s old name for steps
        payload["config"] = renamed(payload["config"], "iterations", "steps")
        save_payload(target / "checkpoint.pt", payload)
        print(f"{folder}/checkpoint.pt: config iterations -> steps")
    if not (target / "config.json").is_file():
        write_json(target / "config.json", {"method": method, "config": payload["config"], "command": command,
                                             "command_now": now(payload["config"], folder),
                                             "converted": CONVERTED.format(old=old)})
    if not (target / "history.json").is_file():
        write_text(target / "history.json", json.dumps(payload["history"], separators=(",", ":")) + "\n")


def convert_black_box(root: Path = ROOT) -> None:
    table = json.loads((root / "data/black_box/05_black_box_full.json").read_text())
    for model, name in SEQUENCE_NAMES.items():
        for ways, shots in ((2, 1), (2, 2), (3, 1), (4, 1)):
            stem = f"{model}_{ways}way_{shots}shot"
            old, folder = f"data/black_box/{stem}.pt", f"data/black_box/{stem}"
            source = root / old if (root / old).is_file() else root / folder / "checkpoint.pt"
            if not source.is_file():
                continue
            config = read_checkpoint(source)["config"]
            seed = f" --seed {config['seed']}" if config.get("seed") else ""
            command = (f"python -m course_lib.sequence_learners --model {model} --ways {ways} --shots {shots} "
                       f"--steps {config['steps']}{seed} --checkpoint {old}")
            convert_checkpoint_file(root, old, folder, "sequence", command, sequence_command)
            results = root / folder / "results.json"
            if not results.is_file():  # the numbers notebook 05 measured for this model (README table)
                record = json.loads((root / folder / "config.json").read_text())
                entry = table["rows"][name][f"{ways}-way {shots}-shot"]
                write_json(results, {
                    "results": {f"{ways}-way {shots}-shot": entry}, "paper": {}, "method": "sequence",
                    "steps_done": read_checkpoint(root / folder / "checkpoint.pt")["step"],
                    "config": record["config"], "test_episodes": entry["episodes"],
                    "test_queries_per_class": 1, "test_seed": 0,
                    "source": "data/black_box/05_black_box_full.json (notebook 05's full-mode run)"})
    for stem, command in PLATEAU.items():
        convert_checkpoint_file(root, f"data/black_box/plateau/{stem}.pt", f"data/black_box/plateau/{stem}",
                                "sequence", command, sequence_command)
    for stem, command in RL2.items():
        convert_checkpoint_file(root, f"data/black_box/{stem}.pt", f"data/black_box/{stem}", "rl2", command,
                                rl2_command)
    capstone = root / "data/capstone/results.json"  # its notes name the checkpoint files
    if capstone.is_file():
        text = capstone.read_text()
        for model in SEQUENCE_NAMES:
            text = text.replace(f"data/black_box/{model}_<W>way_<K>shot.pt:", f"data/black_box/{model}_<W>way_<K>shot:")
        if text != capstone.read_text():
            write_text(capstone, text)
            print("data/capstone/results.json: notes name the run folders")


# --------------------------------------------------------------------------
# Notebook 07: data/vsml/symla/{symla,rl2}.pt + results.json -> data/vsml/symla/{symla,rl2}/
# --------------------------------------------------------------------------


def convert_symla(root: Path = ROOT) -> None:
    base = root / "data/vsml/symla"
    old_results = base / "results.json"
    if not old_results.is_file():
        return
    old = json.loads(old_results.read_text())
    command = old["command"]
    convert_checkpoint_file(root, "data/vsml/symla/rl2.pt", "data/vsml/symla/rl2", "rl2", command, rl2_command)
    symla = base / "symla"
    if move(root, base / "symla.pt", symla / "checkpoint.pt"):
        raw = torch.load(symla / "checkpoint.pt", map_location="cpu", weights_only=True)
        config = renamed(raw["config"], "iterations", "steps")
        history = {"total_reward": [[s, v] for s, v in zip(raw["history"]["iteration"], raw["history"]["total_reward"])]}
        save_payload(symla / "checkpoint.pt", {
            "format": CHECKPOINT_FORMAT, "model_class": "SymLAAgent", "config": config,
            "state_dict": raw["state_dict"], "history": history, "step": raw["history"]["iterations_done"],
            "results": {}})
        write_json(symla / "config.json", {
            "method": "symla", "config": config, "command": command,
            "command_now": f"python -m course_lib train symla --arms {config['arms']} --horizon {config['horizon']} "
                           f"--steps {config['steps']} --out data/vsml/symla/symla",
            "train_seconds": round(raw["history"]["seconds"], 1),
            "converted": CONVERTED.format(old="data/vsml/symla/symla.pt") + "; the RL² GRU of the same command is "
                         "in data/vsml/symla/rl2"})
        write_text(symla / "history.json", json.dumps(history, separators=(",", ":")) + "\n")
    # The evaluation of the old command, split by agent (numbers as they were).
    names = {"RL² GRU": "RL²", "Thompson": "Thompson sampling"}
    rows = {row: {names.get(k, k): {**v, "bandits": 2000} for k, v in entries.items()}
            for row, entries in old["evaluation"].items()}
    details = {"paper": {}, "test_episodes": 2000, "test_bandits_seed": 999, "policy_seed": 0,
               "source": "data/vsml/symla/results.json of the command in config.json"}
    training_row = next(iter(rows))
    for agent, folder, results in (
            ("symla", symla, {row: {k: v for k, v in entries.items() if k != "RL²"} for row, entries in rows.items()}),
            ("rl2", base / "rl2", {k: v for k, v in rows[training_row].items() if k != "SymLA"})):
        record = json.loads((folder / "config.json").read_text())
        if not (folder / "results.json").is_file():
            write_json(folder / "results.json", {"results": results, "method": agent,
                                                 "steps_done": old[f"{agent}_iterations"],
                                                 "config": record["config"], **details})
    subprocess.run(["git", "rm", "-q", str(old_results.relative_to(root))], cwd=root, capture_output=True)
    old_results.unlink(missing_ok=True)
    print("data/vsml/symla/results.json -> symla/results.json and rl2/results.json")


# --------------------------------------------------------------------------
# Notebook 07: data/vsml/{scratch,...}: VSML's own checkpoint payload -> course_lib.runs format
# --------------------------------------------------------------------------

VSML_FOLDERS = ("scratch", "scratch_omniglot", "clone", "metarnn", "fastweight", "large_omniglot/vsml",
                "large_omniglot/metarnn")
VSML_CLASSES = {"vsml": "VSMLLearner", "metarnn": "MetaRNN", "fastweight": "FastWeightLearner"}
VSML_CONVERTED = ("converted by scripts/convert_runs.py from course_lib.vsml's own checkpoint payload; `command` "
                  "wrote it (it still runs, through course_lib.vsml_alias); `command_now` trains the same config "
                  "with today's command line (its task stream is drawn per step, so it trains a new sample of the "
                  "same run, not these exact weights)")


def vsml_config(config: dict) -> dict:
    """Today's field names (``model`` -> ``learner``) and ``eval_datasets``: the datasets every shipped run was
    tested on (the old ``--eval-datasets`` default)."""
    config = renamed(config, "model", "learner")
    if "eval_datasets" not in config:
        seed = config.pop("seed")
        config = {**config, "eval_datasets": "digits,mnist,omniglot", "seed": seed}
    return config


def vsml_history(old: dict) -> dict:
    """``{"step": [...], "loss": [...], ...}`` (steps counted from 1) -> ``{"loss": [[step index, value], ...]}``."""
    return {name: [[step - 1, value] for step, value in zip(old["step"], old[name]) if value is not None]
            for name in ("loss", "accuracy", "grad_norm") if any(value is not None for value in old.get(name, []))}


def vsml_command(config: dict, out: str, test_streams: int) -> str:
    from course_lib.vsml import VSMLConfig

    defaults = VSMLConfig()
    flags = [flag(k, v) for k, v in config.items() if v != getattr(defaults, k)]
    return f"python -m course_lib train vsml {' '.join(flags)} --test-episodes {test_streams} --out {out}"


def convert_vsml(root: Path = ROOT) -> None:
    for name in VSML_FOLDERS:
        folder = root / "data/vsml" / name
        checkpoint = folder / "checkpoint.pt"
        if not checkpoint.is_file():
            continue
        raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if raw.get("format") != CHECKPOINT_FORMAT:
            config = vsml_config(raw["config"])
            save_payload(checkpoint, {
                "format": CHECKPOINT_FORMAT, "model_class": VSML_CLASSES[config["learner"]], "config": config,
                "state_dict": raw["state_dict"], "history": vsml_history(raw["history"]), "step": raw["step"],
                "results": {}, "rng": torch.Generator().manual_seed(config["seed"]).get_state(),
                "optimizer": raw["optimizer"]})
            print(f"data/vsml/{name}/checkpoint.pt: course_lib.runs format, config model -> learner")
            record = json.loads((folder / "config.json").read_text())
            results = json.loads((folder / "results.json").read_text())
            test_streams = results.get("test_episodes", results.get("eval_streams"))
            write_json(folder / "config.json", {
                "method": "vsml", "config": config, "command": record["command"],
                **({"later_commands": record["later_commands"]} if "later_commands" in record else {}),
                "command_now": vsml_command(config, f"data/vsml/{name}", test_streams),
                "train_seconds": round(raw["train_seconds"], 1),
                "skipped_steps": raw["history"].get("skipped_steps", 0), "converted": VSML_CONVERTED})
        history = json.loads((folder / "history.json").read_text())
        if isinstance(history.get("step"), list):
            write_text(folder / "history.json", json.dumps(vsml_history(history), separators=(",", ":")) + "\n")
            print(f"data/vsml/{name}/history.json: course_lib.runs layout")
        for path in sorted(folder.glob("results*.json")):  # results.json and results_<steps>_steps.json
            old = json.loads(path.read_text())
            if "results" in old:
                continue
            entries = {k: old[k] for k in ("evaluation", "variables", "clone") if k in old}
            if old.get("skipped_datasets"):
                entries["skipped_datasets"] = old["skipped_datasets"]
            moved = ("evaluation", "variables", "clone", "skipped_datasets", "config", "steps_done", "eval_streams")
            write_json(path, {"results": entries, "paper": {}, "method": "vsml", "steps_done": old["steps_done"],
                              "config": vsml_config(old["config"]), "test_episodes": old["eval_streams"],
                              **{k: v for k, v in old.items() if k not in moved},
                              "converted": "course_lib.cli's layout, by scripts/convert_runs.py; numbers as they were"})
            print(f"data/vsml/{name}/{path.name}: course_lib.cli layout (numbers unchanged)")


# --------------------------------------------------------------------------
# Notebook 04: data/maml/*: the method's name, and the config fields added since (init_from, batching)
# --------------------------------------------------------------------------


def maml_config(config: dict, batching: str) -> dict:
    """The stored MAML config with today's fields: ``init_from`` ("" when absent) and ``batching``: the
    path the run was trained with (its results.json says; every shipped run used the per-task loop)."""
    return {**config, "init_from": config.get("init_from", ""), "batching": config.get("batching", batching)}


def convert_maml(root: Path = ROOT) -> None:
    for folder in sorted((root / "data" / "maml").glob("*/")):
        if not (folder / "config.json").is_file() or not (folder / "checkpoint.pt").is_file():
            continue
        results = json.loads((folder / "results.json").read_text()) if (folder / "results.json").is_file() else {}
        batching = results.get("batching") if results.get("batching") in ("vmap", "loop") else "loop"
        record = json.loads((folder / "config.json").read_text())
        wanted = {"method": "maml", **record, "config": maml_config(record["config"], batching)}
        if wanted != record or list(wanted) != list(record):
            write_json(folder / "config.json", wanted)
            print(f"{folder.relative_to(root)}/config.json: method maml, config fields init_from and batching")
        payload = read_checkpoint(folder / "checkpoint.pt")
        config = maml_config(payload["config"], batching)
        if config != payload["config"]:
            save_payload(folder / "checkpoint.pt", {**payload, "config": config})
            print(f"{folder.relative_to(root)}/checkpoint.pt: config fields init_from and batching")


# --------------------------------------------------------------------------
# Notebook 09: data/benchmark/ -> data/capstone/, each part with its row's in-distribution test set
# --------------------------------------------------------------------------


def convert_capstone(root: Path = ROOT) -> None:
    old, new = root / "data/benchmark", root / "data/capstone"
    if old.is_dir() and not new.exists():
        moved = subprocess.run(["git", "mv", "data/benchmark", "data/capstone"], cwd=root,
                               capture_output=True).returncode == 0
        if not moved:
            old.replace(new)
        print("moved data/benchmark -> data/capstone")
    results = new / "results.json"
    if not results.is_file():
        return
    rows = json.loads(results.read_text())["methods"]
    for path in sorted((new / "parts").glob("*.json")):  # assemble() used to add it from a table of names
        part = json.loads(path.read_text())
        if "in_distribution" not in part["result"] and part["method"] in rows:
            part["result"]["in_distribution"] = rows[part["method"]].get("in_distribution", "omniglot")
            write_json(path, part)
            print(f"{path.relative_to(root)}: in_distribution {part['result']['in_distribution']}")


# --------------------------------------------------------------------------
# Every method: the meta-parameters' learning rate is meta_lr (it was lr outside MAML)
# --------------------------------------------------------------------------

META_LR_FILES = ("config.json", "results*.json", "phase_diagram.json")  # the files that record a config or command
META_LR_LEFT_OUT = ("data/maml/", "data/cache/")  # MAML has had it from the start; the cache records no runs
FORMER_LR_OPTION = re.compile(r"(?<=\s)--lr(?=[\s=]|$)")  # not --lr-halve-every


def meta_lr_record(record: dict) -> dict:
    """A stored record with ``lr`` -> ``meta_lr`` in its ``config`` (and the GPICL plateau's per-batch-size
    ``groups``) and ``--lr`` -> ``--meta-lr`` in its commands; the runs load either way (course_lib.runs
    RENAMED_FIELDS), this makes what they show today's names."""
    def config(stored: dict) -> dict:
        return renamed(stored, "lr", "meta_lr") if "meta_lr" not in stored else stored

    def command(text: str) -> str:  # a former entry point (python -m course_lib.train) reads --lr itself: history
        return text if text.startswith("python -m course_lib.") else FORMER_LR_OPTION.sub("--meta-lr", text)

    record = dict(record)
    if isinstance(record.get("config"), dict):
        record["config"] = config(record["config"])
    if isinstance(record.get("groups"), dict):
        record["groups"] = {name: config(stored) for name, stored in record["groups"].items()}
    for key in ("command", "command_now"):
        if isinstance(record.get(key), str):
            record[key] = command(record[key])
    if isinstance(record.get("later_commands"), list):
        record["later_commands"] = [command(text) for text in record["later_commands"]]
    return record


def convert_meta_lr(root: Path = ROOT) -> None:
    paths = sorted({path for pattern in META_LR_FILES for path in (root / "data").rglob(pattern)})
    for path in paths:
        if path.relative_to(root).as_posix().startswith(META_LR_LEFT_OUT):
            continue
        text = path.read_text(encoding="utf-8")
        record = json.loads(text)
        if not isinstance(record, dict) or (converted := meta_lr_record(record)) == record:
            continue
        # the file's own layout (indent 1 or 2), so that the diff shows only the renamed names
        indent = next((i for i in (2, 1) if json.dumps(record, indent=i) + "\n" == text), 2)
        write_text(path, json.dumps(converted, indent=indent) + "\n")
        print(f"{path.relative_to(root)}: lr -> meta_lr, --lr -> --meta-lr")


CONVERSIONS = (convert_capstone, convert_black_box, convert_symla, convert_vsml, convert_maml, convert_meta_lr)


def main(names: list[str] | None = None) -> None:
    """Every conversion, or those named (``python scripts/convert_runs.py convert_meta_lr``)."""
    names = names or [conversion.__name__ for conversion in CONVERSIONS]
    known = {conversion.__name__: conversion for conversion in CONVERSIONS}
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown conversion {name!r}; the conversions: {', '.join(known)}")
        known[name](ROOT)


if __name__ == "__main__":
    main(sys.argv[1:])
