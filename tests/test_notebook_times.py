"""The instructor notes' timing table is generated from docs/notebook_times.json (scripts/time_notebooks.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location("time_notebooks", REPO / "scripts" / "time_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_follows_the_record(capsys):
    assert load_script().main(["--check"]) == 0, capsys.readouterr().out


def test_a_changed_record_makes_the_check_fail(tmp_path, monkeypatch, capsys):
    script = load_script()
    record = json.loads(script.RECORD.read_text())
    name = sorted(record)[0]
    kind = sorted(record[name])[0]
    record[name][kind]["seconds"] += 1000
    (tmp_path / "times.json").write_text(json.dumps(record))
    (tmp_path / "notes.md").write_text(script.NOTES.read_text())
    (tmp_path / "README.md").write_text(script.README.read_text())
    monkeypatch.setattr(script, "RECORD", tmp_path / "times.json")
    monkeypatch.setattr(script, "GENERATED", {tmp_path / "notes.md": script.table, tmp_path / "README.md": script.summary})
    monkeypatch.setattr(script, "ROOT", tmp_path)
    assert script.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "notes.md do not follow" in out and "README.md do not follow" in out
    assert script.main(["--render"]) == 0 and script.main(["--check"]) == 0
    assert f"{record[name][kind]['seconds']:.0f}" in (tmp_path / "notes.md").read_text()


def test_the_readme_summary_adds_up_the_record():
    script = load_script()
    record = json.loads(script.RECORD.read_text())
    smoke_total = sum(runs["smoke-cpu"]["seconds"] for runs in record.values())
    full_total = sum(runs["full-cpu"]["seconds"] for runs in record.values())
    text = script.summary(record)
    assert f"{smoke_total / 60:.0f} min in smoke mode" in text and f"{full_total / 60:.0f} min in full mode" in text
    assert text in script.README.read_text()


def test_every_notebook_has_a_measured_smoke_time():
    script = load_script()
    record = json.loads(script.RECORD.read_text())
    missing = [name for name in script.notebook_names() if "smoke-cpu" not in record.get(name, {})]
    assert not missing, f"no smoke time recorded for {missing}: run COURSE_MODE=smoke scripts/time_notebooks.py --record"
