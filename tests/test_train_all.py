"""scripts/train_all.sh: every registered run at paper scale, in sequence, resumable.

The full runs take GPU hours, so the test runs the script with DRY_RUN=1 and
checks every command it would run with the command line's own parser and the
method's Config: a misspelt option, a removed flag or a bad value fails here,
not after an hour on a GPU. The resume and skip rules are checked on a fake
run folder.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import cli, registry

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "train_all.sh"


def dry_run(root: Path, **env) -> dict[str, list[str]]:
    """{job name: argv} of the jobs the script would run."""
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=True,
                         env={**os.environ, "DRY_RUN": "1", "ROOT": str(root), "PY": sys.executable, **env}).stdout
    jobs = {}
    for line in out.splitlines():
        if line.startswith("[") and "] " in line and f": {sys.executable} " in line:
            name, command = line.split("] ", 1)[1].split(": ", 1)
            jobs[name] = ["python", *shlex.split(command)[1:]]
    return jobs


def test_the_jobs_are_the_registrys_runs_with_paper_scale_options():
    jobs = dry_run(Path("runs/unused"))
    expected = [run.name for name in registry.names() for run in registry.get(name).RUNS if run.options]
    assert list(jobs) == expected and len(set(expected)) == len(expected)  # one job per run, unique names
    for name in ("protonet", "matching_5w1s", "maml_5w1s", "reptile_5w1s", "mann_2w1s", "rl2_T10", "vsml_scratch",
                 "gpicl_sweep", "icl_regression", "protonet_background", "maml_5w1s_background"):
        assert name in jobs, name
    assert all("--device" in argv for argv in jobs.values())


@pytest.mark.parametrize("smoke", ["0", "1"])
def test_every_command_parses_and_makes_a_valid_config(smoke, tmp_path):
    jobs = dry_run(tmp_path, SMOKE=smoke)
    assert len(jobs) >= 20
    for name, argv in jobs.items():
        assert argv[:4] == ["python", "-m", "course_lib", "train"], (name, argv)
        method = argv[4]
        args = cli.build_parser(method).parse_args(argv[3:])  # SystemExit (a test failure) on a bad option
        cli.config_from_args(args, registry.get(method).Config)  # RunError on a bad value
        assert str(args.out).startswith(str(tmp_path)), f"{name} writes outside ROOT: {args.out}"
        assert args.smoke_data == (smoke == "1")


def test_a_run_folder_with_a_checkpoint_is_resumed_and_a_finished_job_skipped(tmp_path):
    (tmp_path / "protonet").mkdir()
    (tmp_path / "protonet" / "checkpoint.pt").write_bytes(b"")
    jobs = dry_run(tmp_path)
    assert "--resume" in jobs["protonet"] and "--resume" not in jobs["maml_5w1s"]
    (tmp_path / "times.tsv").write_text("job\tseconds\texit\tdevice\tfinished\nmaml_5w1s\t60\t0\tcuda\tx\n"
                                        "fomaml_5w1s\t60\t1\tcuda\tx\n")
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=True,
                         env={**os.environ, "ROOT": str(tmp_path), "PY": "true", "LIST_PY": sys.executable,
                              "ONLY": "maml_5w1s fomaml_5w1s"}).stdout
    assert "skip maml_5w1s" in out  # finished (exit 0): skipped
    assert "fomaml_5w1s: true -m course_lib train maml" in out  # failed before: run again


def test_only_selects_jobs():
    jobs = dry_run(Path("runs/unused"), ONLY="protonet gpicl_sweep")
    assert set(jobs) == {"protonet", "gpicl_sweep"}


def test_the_readme_counts_the_jobs_the_script_has():
    jobs = dry_run(Path("runs/unused"))
    assert f"list the {len(jobs)} commands" in (REPO / "README.md").read_text()
