"""scripts/train_all.sh: one command line per method at paper scale, run in sequence, resumable.

The full runs take GPU hours, so the test runs the script with DRY_RUN=1 and
parses every command it would run with that module's own argument parser:
a misspelt option, a removed flag or a wrong module fails here, not after an
hour on a GPU. The resume and skip rules are checked on a fake run folder.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "train_all.sh"


def dry_run(root: Path, **env) -> dict[str, list[str]]:
    """{job name: argv} of the jobs the script would run."""
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=True,
                         env={**os.environ, "DRY_RUN": "1", "ROOT": str(root), "PY": "python", **env}).stdout
    jobs = {}
    for line in out.splitlines():
        if line.startswith("[") and "] " in line and ": python" in line:
            name, command = line.split("] ", 1)[1].split(": ", 1)
            jobs[name] = shlex.split(command)
    return jobs


def test_every_method_of_the_course_has_a_job():
    jobs = dry_run(Path("runs/unused"))
    for name in ("protonet", "matching_5w1s", "matching_20w1s", "maml_5w1s", "fomaml_5w1s", "reptile_5w1s",
                 "maml_20w1s", "mann_2w1s", "lstm_4w1s", "transformer_2w1s", "rl2_T10", "vsml_scratch",
                 "vsml_metarnn", "vsml_clone", "gpicl_sweep", "protonet_background", "maml_5w1s_background",
                 "vsml_scratch_omniglot", "gpicl_omniglot", "icl_regression"):
        assert name in jobs, name
    assert all("--device" in argv for name, argv in jobs.items() if not name.startswith(("rl2", "maml_sinusoid")))


@pytest.mark.parametrize("smoke", ["0", "1"])
def test_every_command_parses_with_its_modules_own_parser(smoke, tmp_path):
    jobs = dry_run(tmp_path, SMOKE=smoke)
    assert len(jobs) >= 15
    for name, argv in jobs.items():
        assert argv[:2] == ["python", "-m"], (name, argv)
        module = importlib.import_module(argv[2])
        args = module.build_parser().parse_args(argv[3:])  # SystemExit (a test failure) on a bad option
        target = getattr(args, "out", None) or getattr(args, "checkpoint", None)
        assert str(target).startswith(str(tmp_path)), f"{name} writes outside ROOT: {target}"


def test_a_run_folder_with_a_checkpoint_is_resumed_and_a_finished_job_skipped(tmp_path):
    (tmp_path / "protonet").mkdir()
    (tmp_path / "protonet" / "checkpoint.pt").write_bytes(b"")
    jobs = dry_run(tmp_path)
    assert "--resume" in jobs["protonet"] and "--resume" not in jobs["maml_5w1s"]
    (tmp_path / "times.tsv").write_text("job\tseconds\texit\tdevice\tfinished\nmaml_5w1s\t60\t0\tcuda\tx\n"
                                        "fomaml_5w1s\t60\t1\tcuda\tx\n")
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=True,
                         env={**os.environ, "ROOT": str(tmp_path), "PY": "true", "ONLY": "maml_5w1s fomaml_5w1s"}).stdout
    assert "skip maml_5w1s" in out  # finished (exit 0): skipped
    assert "fomaml_5w1s: true -m course_lib.maml" in out  # failed before: run again


def test_only_selects_jobs():
    jobs = dry_run(Path("runs/unused"), ONLY="protonet gpicl_sweep")
    assert set(jobs) == {"protonet", "gpicl_sweep"}


def test_the_readme_counts_the_jobs_the_script_has():
    jobs = dry_run(Path("runs/unused"))
    assert f"list the {len(jobs)} commands" in (REPO / "README.md").read_text()
