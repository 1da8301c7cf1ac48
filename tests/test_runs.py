"""course_lib.runs: history, the training loop, checkpoints and run folders that are never lost."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
from pathlib import Path

import pytest
import torch

from course_lib import runs
from course_lib.runs import CheckpointMismatchError, History, RunError, RunFolder, load_checkpoint, save_checkpoint


@dataclasses.dataclass
class Config:
    hidden: int = 4
    meta_lr: float = 0.1
    steps: int = 10


def make_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


# --------------------------------------------------------------------------
# History and the loop
# --------------------------------------------------------------------------


def test_history_logs_and_round_trips():
    history = History()
    history.log(0, loss=1.0)
    history.log(1, loss=0.5, accuracy=0.2)
    assert history["loss"] == ([0, 1], [1.0, 0.5]) and history.last("accuracy") == 0.2 and "loss" in history
    assert History.from_state_dict(history.state_dict()).records == history.records
    with pytest.raises(KeyError, match="recorded"):
        history["nope"]


def test_loop_logs_every_step_evaluates_and_saves_at_the_end():
    saved = []
    history = runs.train_loop(lambda i: {"loss": float(i)}, 5, evaluate=lambda: {"acc": 1.0}, eval_every=2,
                              save=lambda done, h: saved.append(done), progress=False)
    assert history["loss"][0] == [0, 1, 2, 3, 4] and history["acc"][0] == [1, 3, 4]
    assert history.steps_done == 5 and history.stopped is None and saved == [5]


def test_loop_resumes_from_a_step_and_stops_on_time():
    history = runs.train_loop(lambda i: {"loss": 0.0}, 6, start_step=4, progress=False)
    assert history["loss"][0] == [4, 5]
    stopped = runs.train_loop(lambda i: {"loss": 0.0}, 1000, max_seconds=0.0, progress=False)
    assert stopped.steps_done == 0 and stopped.stopped == "time"  # checked before each step
    with pytest.raises(ValueError):
        runs.train_loop(lambda i: {}, -1, progress=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_between_steps_and_the_checkpoint_holds_the_last_completed_step(signum):
    """The signal arrives in the middle of step 2: step 2 finishes, is saved, and nothing after it runs."""
    weights, saved = torch.zeros(1), {}

    def step(i):
        if i == 2:
            os.kill(os.getpid(), signum)
        weights.add_(1.0)  # the rest of the step still runs
        return {"loss": float(i)}

    def save(done, history):
        saved.update(step=done, weights=weights.clone(), logged=history["loss"][0])

    with pytest.raises(KeyboardInterrupt):
        runs.train_loop(step, 10, save=save, progress=False)
    assert saved["step"] == 3 and saved["weights"].item() == 3.0 and saved["logged"] == [0, 1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


def test_checkpoint_round_trip_with_optimizer_history_and_rng(tmp_path):
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    history = History()
    history.log(0, loss=1.0)
    torch.manual_seed(7)
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, Config(), history=history,
                           optimizer=optimizer, step=1, extra={"note": 3})
    expected = torch.rand(3)
    fresh, fresh_optimizer = make_mlp(seed=1), None
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.1)
    payload = load_checkpoint(path, fresh, Config(), optimizer=fresh_optimizer, restore_rng=True)
    assert torch.equal(torch.rand(3), expected)  # the random stream goes on where it was saved
    assert payload["step"] == 1 and payload["history"].records == history.records and payload["extra"] == {"note": 3}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary files left


@pytest.mark.parametrize("problem, match", [
    ("class", "holds a Sequential"), ("config", "another config"), ("shape", "different architecture"),
    ("bare", "not written by"), ("truncated", "not a readable checkpoint"), ("missing", "no checkpoint"),
])
def test_a_wrong_checkpoint_is_refused_with_a_reason_that_names_it(tmp_path, problem, match):
    path = save_checkpoint(tmp_path / "model.pt", make_mlp(), Config())
    target, config = make_mlp(seed=1), None
    if problem == "class":
        target = torch.nn.Linear(3, 2)
    elif problem == "config":
        config = Config(meta_lr=0.5)
    elif problem == "shape":
        target = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    elif problem == "bare":
        torch.save(make_mlp().state_dict(), path)
    elif problem == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif problem == "missing":
        path = tmp_path / "nope.pt"
    before = [t.clone() for t in target.state_dict().values()]
    with pytest.raises((CheckpointMismatchError, FileNotFoundError), match=match) as error:
        load_checkpoint(path, target, config)
    assert path.name in str(error.value)
    assert all(torch.equal(a, b) for a, b in zip(before, target.state_dict().values()))  # untouched


# --------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------


def test_a_folder_with_a_run_is_never_replaced_silently(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start("toy", Config(), "first command")
    save_checkpoint(run.checkpoint, make_mlp(), Config(), step=3)
    before = run.checkpoint.read_bytes()
    with pytest.raises(RunError, match="already holds a run.*--resume.*--overwrite"):
        run.start("toy", Config(), "second command")
    assert run.checkpoint.read_bytes() == before and run.record()["command"] == "first command"
    run.start("toy", Config(steps=20), "resumed", resume=True)
    assert run.record()["command"] == "first command" and run.record()["later_commands"] == ["resumed"]
    run.start("toy", Config(hidden=8), "replaced", overwrite=True)
    assert not run.checkpoint.exists() and run.record() == {"method": "toy", "config": dataclasses.asdict(Config(hidden=8)),
                                                            "command": "replaced"}


def test_resume_needs_a_checkpoint_and_the_same_config_but_steps(tmp_path):
    run = RunFolder(tmp_path / "run")
    with pytest.raises(RunError, match="holds no checkpoint.pt"):
        run.check("toy", Config(), resume=True)
    assert not run.path.exists()
    run.start("toy", Config(), "first")
    save_checkpoint(run.checkpoint, make_mlp(), Config(), step=3)
    run.check("toy", Config(steps=99), resume=True)  # more steps: fine
    with pytest.raises(RunError, match="meta_lr: stored 0.1 vs yours 0.5"):
        run.check("toy", Config(meta_lr=0.5), resume=True)
    with pytest.raises(RunError, match="holds a toy run, not other"):
        run.check("other", Config(), resume=True)
    with pytest.raises(RunError, match="choose one"):
        run.check("toy", Config(), resume=True, overwrite=True)


@dataclasses.dataclass
class ConfigWithANewField(Config):
    loss_on: str = "all"  # added after the runs above were written; its default is what they did


def test_a_field_added_later_takes_its_default_when_an_old_run_resumes(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start("toy", Config(), "first")
    save_checkpoint(run.checkpoint, make_mlp(), Config(), step=3)  # written before the field existed
    run.check("toy", ConfigWithANewField(steps=20), resume=True)  # the default: the same run
    load_checkpoint(run.checkpoint, make_mlp(), ConfigWithANewField())
    with pytest.raises(RunError, match="loss_on: stored 'all' vs yours 'queries'"):
        run.check("toy", ConfigWithANewField(loss_on="queries"), resume=True)
    with pytest.raises(CheckpointMismatchError, match="loss_on"):
        load_checkpoint(run.checkpoint, make_mlp(), ConfigWithANewField(loss_on="queries"))


def old_run(folder, meta_lr: float = 0.3) -> RunFolder:
    """A run folder written before ``lr`` was renamed ``meta_lr``: config.json and checkpoint.pt say ``lr``."""
    run, old = RunFolder(folder), {"hidden": 4, "lr": meta_lr, "steps": 10}  # a dict keeps the name it is given
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)
    save_checkpoint(run.checkpoint, model, old, optimizer=optimizer, step=3)
    runs.write_json(run.config_file, {"method": "toy", "config": old, "command": "train toy --lr 0.3"})
    return run


def test_a_stored_config_with_a_former_field_name_loads_under_the_new_name(tmp_path):
    run = old_run(tmp_path / "run", meta_lr=0.3)
    assert runs.RENAMED_FIELDS["lr"] == "meta_lr"
    assert Config(**runs.with_added_defaults(run.stored_config(), Config)) == Config(meta_lr=0.3)  # the value moves
    load_checkpoint(run.checkpoint, make_mlp(), Config(meta_lr=0.3))
    with pytest.raises(CheckpointMismatchError, match="meta_lr: stored 0.3 vs yours 0.1"):  # not the default
        load_checkpoint(run.checkpoint, make_mlp(), Config())


def test_a_run_with_a_former_field_name_resumes_and_records_the_new_name(tmp_path):
    run = old_run(tmp_path / "run", meta_lr=0.3)
    run.check("toy", Config(meta_lr=0.3, steps=20), resume=True)
    with pytest.raises(RunError, match="meta_lr: stored 0.3 vs yours 0.1"):
        run.check("toy", Config(steps=20), resume=True)
    run.start("toy", Config(meta_lr=0.3, steps=20), "resumed", resume=True)
    assert run.record()["config"] == {"hidden": 4, "meta_lr": 0.3, "steps": 20}


def test_a_config_that_still_has_the_former_name_keeps_it():
    @dataclasses.dataclass
    class StillLr:  # e.g. a Config whose lr is not renamed (no meta_lr field)
        lr: float = 0.1

    assert runs.with_added_defaults({"lr": 0.3}, StillLr) == {"lr": 0.3}


def test_a_stored_config_with_both_names_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(RunError, match="holds both 'lr' and 'meta_lr'.*keep only 'meta_lr'"):
        runs.with_added_defaults({"hidden": 4, "lr": 0.3, "meta_lr": 0.3, "steps": 10}, Config)
    run = RunFolder(tmp_path / "run")
    save_checkpoint(run.checkpoint, make_mlp(), {"hidden": 4, "lr": 0.3, "meta_lr": 0.3, "steps": 10}, step=3)
    runs.write_json(run.config_file, {"method": "toy", "config": {}, "command": "first"})
    with pytest.raises(RunError, match="keep only 'meta_lr'"):
        run.check("toy", Config(meta_lr=0.3), resume=True)


def test_resuming_a_checkpoint_without_optimizer_state_warns_once_and_loading_for_evaluation_is_silent(
        tmp_path, capsys):
    path = save_checkpoint(tmp_path / "checkpoint.pt", make_mlp(), Config(), step=3)  # no optimizer saved
    load_checkpoint(path, make_mlp(), Config())  # evaluation: no optimizer asked for
    assert capsys.readouterr().err == ""
    model = make_mlp()
    load_checkpoint(path, model, Config(), optimizer=torch.optim.Adam(model.parameters(), lr=0.1))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "holds no optimizer state" in err and "not exactly" in err
    assert str(path) in err and "Adam" in err
    with_state = save_checkpoint(tmp_path / "with_state.pt", model, Config(), step=3,
                                 optimizer=torch.optim.Adam(model.parameters(), lr=0.1))
    load_checkpoint(with_state, make_mlp(), Config(), optimizer=torch.optim.Adam(make_mlp().parameters(), lr=0.1))
    assert capsys.readouterr().err == ""


def test_the_conversion_script_renames_configs_and_commands_once():
    spec = importlib.util.spec_from_file_location(
        "convert_runs", Path(__file__).resolve().parent.parent / "scripts" / "convert_runs.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    old = {"config": {"lr": 0.001, "lr_halve_every": 2000, "seed": 0}, "groups": {"16": {"lr": 0.001}},
           "command": "python -m course_lib.train protonet --lr 1e-3 --lr-halve-every 2000 --out x",
           "later_commands": ["python -m course_lib train protonet --lr=1e-3"], "results": {"SGD": {"lr": 0.1}}}
    new = convert.meta_lr_record(old)
    assert new == {"config": {"meta_lr": 0.001, "lr_halve_every": 2000, "seed": 0},
                   "groups": {"16": {"meta_lr": 0.001}},
                   # the former entry point reads --lr itself (tests/test_cli.py): its recorded command is history
                   "command": "python -m course_lib.train protonet --lr 1e-3 --lr-halve-every 2000 --out x",
                   "later_commands": ["python -m course_lib train protonet --meta-lr=1e-3"],
                   "results": {"SGD": {"lr": 0.1}}}  # a baseline's lr is not the meta-parameters'
    assert list(new["config"]) == ["meta_lr", "lr_halve_every", "seed"]  # in its place
    assert convert.meta_lr_record(new) == new  # a second run changes nothing


def test_a_corrupt_config_json_is_named(tmp_path):
    run = RunFolder(tmp_path)
    run.config_file.write_text("{not json")
    with pytest.raises(RunError, match="config.json is not valid JSON"):
        run.record()


def test_batch_norm_buffers_survive_and_the_file_is_plain_weights(tmp_path):
    from course_lib.models import Conv4

    model = Conv4(hidden=8, num_classes=5).train()
    model(torch.rand(4, 1, 28, 28))  # updates the running statistics
    path = save_checkpoint(tmp_path / "conv.pt", model, {"hidden": 8, "num_classes": 5})
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == runs.CHECKPOINT_FORMAT and payload["model_class"] == "Conv4"
    fresh = Conv4(hidden=8, num_classes=5)
    load_checkpoint(path, fresh, {"hidden": 8, "num_classes": 5})
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name]), name


def test_a_config_that_is_not_plain_is_refused_and_nothing_is_written(tmp_path):
    for bad in (["hidden", 8], Config):  # a list; the class instead of an instance
        with pytest.raises(TypeError):
            save_checkpoint(tmp_path / "model.pt", make_mlp(), bad)
    assert list(tmp_path.iterdir()) == []


def test_dropping_the_optimizer_state_keeps_the_weights_and_makes_resume_warn(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "drop_optimizer_state", Path(__file__).resolve().parent.parent / "scripts" / "drop_optimizer_state.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()  # Adam now holds two moments per weight
    path = save_checkpoint(tmp_path / "checkpoint.pt", model, Config(), step=3, optimizer=optimizer)
    before = torch.load(path, weights_only=True)
    script.main([str(path)])
    after = torch.load(path, weights_only=True)
    assert "optimizer" in before and "optimizer" not in after
    assert {k: v for k, v in before.items() if k != "optimizer"}.keys() == after.keys()
    for name, tensor in before["state_dict"].items():
        assert torch.equal(tensor, after["state_dict"][name]), name
    assert not script.drop_optimizer_state(path)  # a second run changes nothing
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    capsys.readouterr()
    load_checkpoint(path, make_mlp(), Config(), optimizer=torch.optim.Adam(make_mlp().parameters(), lr=0.1))
    assert "holds no optimizer state" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable checkpoint"):
        script.main([str(path), str(tmp_path / "notes.txt")])
    with pytest.raises(SystemExit, match="does not exist"):
        script.main([str(tmp_path / "missing.pt")])
