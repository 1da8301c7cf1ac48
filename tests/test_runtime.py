"""course_lib.runtime: mode, device, seeding and folders."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from course_lib import runtime


# --------------------------------------------------------------------------
# Mode
# --------------------------------------------------------------------------


def test_get_mode_defaults_to_full(monkeypatch):
    """Without COURSE_MODE the course runs the full budgets."""
    monkeypatch.delenv("COURSE_MODE", raising=False)
    assert runtime.get_mode() == "full"
    assert runtime.is_smoke() is False


@pytest.mark.parametrize("value, expected", [("smoke", "smoke"), ("full", "full"), (" SMOKE ", "smoke")])
def test_get_mode_reads_course_mode(monkeypatch, value, expected):
    """COURSE_MODE selects the mode (case and surrounding blanks ignored)."""
    monkeypatch.setenv("COURSE_MODE", value)
    assert runtime.get_mode() == expected
    assert runtime.is_smoke() is (expected == "smoke")


def test_get_mode_rejects_unknown_value_naming_the_variable(monkeypatch):
    """A typo in COURSE_MODE is an error whose message names the variable and the value."""
    monkeypatch.setenv("COURSE_MODE", "smok")
    with pytest.raises(ValueError) as info:
        runtime.get_mode()
    assert "COURSE_MODE" in str(info.value)
    assert "smok" in str(info.value)


@pytest.mark.parametrize("mode, expected", [("smoke", 20), ("full", 5000)])
def test_by_mode_picks_the_budget_of_the_mode(monkeypatch, mode, expected):
    """by_mode returns the smoke value in smoke mode and the full value in full mode."""
    monkeypatch.setenv("COURSE_MODE", mode)
    assert runtime.by_mode(smoke=20, full=5000) == expected


# --------------------------------------------------------------------------
# Device
# --------------------------------------------------------------------------


def test_get_device_honours_course_device_cpu(monkeypatch):
    """COURSE_DEVICE=cpu gives the CPU."""
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_get_device_argument_overrides_variable(monkeypatch):
    """An explicit device argument wins over COURSE_DEVICE."""
    monkeypatch.setenv("COURSE_DEVICE", "bogus")
    assert runtime.get_device("cpu") == torch.device("cpu")
    assert runtime.get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("source", ["variable", "argument"])
def test_get_device_rejects_bogus_device_string(monkeypatch, source):
    """An unparseable device string is a ValueError (not torch's RuntimeError)."""
    if source == "variable":
        monkeypatch.setenv("COURSE_DEVICE", "gpu-please")
        call = runtime.get_device
    else:
        monkeypatch.delenv("COURSE_DEVICE", raising=False)
        call = lambda: runtime.get_device("gpu-please")  # noqa: E731
    with pytest.raises(ValueError, match="gpu-please"):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_unavailable_cuda_raises_instead_of_falling_back(monkeypatch):
    """Asking for cuda on a machine without it raises RuntimeError that mentions COURSE_DEVICE."""
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError) as info:
        runtime.get_device()
    assert not isinstance(info.value, ValueError)
    assert "COURSE_DEVICE" in str(info.value)
    assert "cuda" in str(info.value)


def test_get_device_without_request_is_an_available_device(monkeypatch):
    """The automatic choice is cuda if available, else mps if available, else cpu."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert runtime.get_device().type == expected


# --------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------


def _draws(generator: torch.Generator):
    return (
        torch.rand(5).tolist(),
        np.random.rand(5).tolist(),
        [random.random() for _ in range(5)],
        torch.rand(5, generator=generator).tolist(),
    )


def test_seed_everything_same_seed_same_draws():
    """The same seed reproduces torch, numpy, python-random and the returned generator's draws."""
    first = _draws(runtime.seed_everything(123))
    second = _draws(runtime.seed_everything(123))
    assert first == second


def test_seed_everything_different_seed_different_draws():
    """A different seed changes every one of the four random streams."""
    first = _draws(runtime.seed_everything(123))
    second = _draws(runtime.seed_everything(124))
    for a, b in zip(first, second):
        assert a != b


def test_seed_everything_returns_generator_seeded_with_seed():
    """The returned generator is seeded exactly like torch.Generator().manual_seed(seed)."""
    generator = runtime.seed_everything(7)
    assert isinstance(generator, torch.Generator)
    expected = torch.rand(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(4, generator=generator), expected)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_seed_everything_rejects_invalid_seed(seed):
    """Negative or non-integer seeds are rejected with ValueError."""
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(seed)


# --------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------


def test_cache_dir_honours_course_cache_dir_and_creates_it(tmp_path, monkeypatch):
    """COURSE_CACHE_DIR names the cache folder, created on first use."""
    target = tmp_path / "some" / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(target))
    assert runtime.cache_dir() == target
    assert target.is_dir()


def test_local_data_dir_unset_is_none(monkeypatch):
    """Without COURSE_DATA_DIR there is no local data folder."""
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert runtime.local_data_dir() is None


def test_local_data_dir_existing_folder(tmp_path, monkeypatch):
    """COURSE_DATA_DIR pointing at a folder returns that folder."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert runtime.local_data_dir() == tmp_path


def test_local_data_dir_missing_folder_names_variable(tmp_path, monkeypatch):
    """COURSE_DATA_DIR naming a missing folder raises FileNotFoundError naming the variable."""
    missing = tmp_path / "does-not-exist"
    monkeypatch.setenv("COURSE_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError) as info:
        runtime.local_data_dir()
    assert "COURSE_DATA_DIR" in str(info.value)
    assert "does-not-exist" in str(info.value)


def test_notebook_setup_seeds_and_reports(monkeypatch, capsys):
    """notebook_setup seeds torch, returns (mode, device) and prints both."""
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    mode, device = runtime.notebook_setup(seed=5)
    drawn = torch.rand(3)
    assert (mode, device) == ("smoke", torch.device("cpu"))
    assert torch.equal(drawn, torch.rand(3, generator=torch.Generator().manual_seed(5)))
    printed = capsys.readouterr().out
    assert "smoke" in printed and "cpu" in printed


# --------------------------------------------------------------------------
# The notebook's checkout and the imported course_lib
# --------------------------------------------------------------------------


def make_checkout(folder):
    for name in ("notebooks", "course_lib"):
        (folder / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text("")
    return folder


def test_check_checkout_passes_when_course_lib_is_the_notebooks_own(tmp_path):
    """A notebook in notebooks/ or work/ of checkout A, course_lib imported from A: fine."""
    checkout = make_checkout(tmp_path / "a")
    (checkout / "work").mkdir()
    for folder in (checkout / "notebooks", checkout / "work", checkout):
        runtime.check_checkout(folder, package_file=checkout / "course_lib" / "__init__.py")


def test_check_checkout_names_both_checkouts_and_the_fix(tmp_path):
    """A notebook of checkout A run by the kernel of checkout B: an error naming A, B and `make install` in A."""
    mine, other = make_checkout(tmp_path / "mine"), make_checkout(tmp_path / "other")
    with pytest.raises(runtime.WrongCheckoutError) as info:
        runtime.check_checkout(mine / "notebooks", package_file=other / "course_lib" / "__init__.py")
    message = str(info.value)
    assert str(mine) in message and str(other / "course_lib") in message
    assert f"`make install` in {mine}" in message


def test_check_checkout_is_silent_outside_a_checkout(tmp_path):
    """A script or notebook outside any checkout (a plain install) has nothing to compare."""
    other = make_checkout(tmp_path / "other")
    (tmp_path / "elsewhere").mkdir()
    runtime.check_checkout(tmp_path / "elsewhere", package_file=other / "course_lib" / "__init__.py")


def test_notebook_setup_refuses_a_course_lib_from_another_checkout(tmp_path, monkeypatch, capsys):
    """notebook_setup (every notebook's first cell) runs the check in the notebook's folder (the kernel's cwd)."""
    mine = make_checkout(tmp_path / "mine")
    monkeypatch.chdir(mine / "notebooks")
    with pytest.raises(runtime.WrongCheckoutError, match="make install"):
        runtime.notebook_setup()
    monkeypatch.chdir(runtime.repo_root() / "notebooks")  # this checkout's own notebooks: fine
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    runtime.notebook_setup()


# --------------------------------------------------------------------------
# Progress bars
# --------------------------------------------------------------------------


@pytest.mark.parametrize("plain, ci, expected", [
    (None, None, False), ("1", None, True), (None, "true", True), ("0", "true", False), ("", "1", True),
])
def test_plain_progress_follows_the_variable_then_ci(monkeypatch, plain, ci, expected):
    """COURSE_PLAIN_PROGRESS decides when set (1 / 0); otherwise CI makes bars plain."""
    for name, value in (("COURSE_PLAIN_PROGRESS", plain), ("CI", ci)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert runtime.plain_progress() is expected


def test_plain_progress_bar_prints_whole_lines_and_no_frozen_start(monkeypatch, capsys):
    """Plain bars: no "0%" line, no carriage returns; the final line of a kept bar; nothing for leave=False."""
    import io

    monkeypatch.setenv("COURSE_PLAIN_PROGRESS", "1")
    stream = io.StringIO()
    bar = runtime.progress_bar(total=300, desc="train", file=stream)
    assert isinstance(bar, runtime.PlainProgress)
    for _ in range(300):
        bar.update()
    bar.close()
    for _ in runtime.progress_bar(range(50), desc="evaluate", leave=False, file=stream):
        pass
    text = stream.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [text.splitlines()[0]] and text.startswith("train: 100%|") and "300/300" in text
    timed = io.StringIO()
    bar = runtime.progress_bar(total=4, desc="slow", mininterval=0, file=timed)
    for _ in range(4):
        bar.update()
    bar.close()
    lines = timed.getvalue().splitlines()
    assert lines[-1].startswith("slow: 100%|") and len(lines) == len(set(lines)), lines
    assert not any(line.split("|")[0].endswith(" 0%") for line in lines)


def test_interactive_progress_bar_is_tqdm_auto(monkeypatch):
    """Without the variable or CI, the bar is tqdm.auto's (a widget in a live notebook)."""
    from tqdm.auto import tqdm

    monkeypatch.delenv("COURSE_PLAIN_PROGRESS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    bar = runtime.progress_bar(range(3), disable=True)
    assert isinstance(bar, tqdm) and not isinstance(bar, runtime.PlainProgress)


def test_progress_bars_are_made_only_through_runtime_progress_bar():
    """No course_lib module or notebook makes a tqdm bar itself (it would be a frozen widget in committed outputs)."""
    from pathlib import Path

    repo = Path(runtime.__file__).resolve().parent.parent
    files = [*(repo / "course_lib").rglob("*.py"), *(repo / "notebooks").glob("[0-9][0-9]_*.py")]
    offenders = [name for name in (path.relative_to(repo).as_posix() for path in files)
                 if name != "course_lib/runtime.py" and "tqdm" in (repo / name).read_text(encoding="utf-8")]
    assert offenders == [], "use course_lib.runtime.progress_bar instead of tqdm"


def test_make_notebooks_executes_with_plain_progress_bars():
    """The Makefile's `notebooks` target runs scripts/time_notebooks.py --in-place, which sets
    COURSE_PLAIN_PROGRESS=1 for the kernels it starts."""
    from pathlib import Path

    repo = Path(runtime.__file__).resolve().parent.parent
    recipe = (repo / "Makefile").read_text().split("\nnotebooks:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/time_notebooks.py --in-place --record" in recipe
    script = (repo / "scripts" / "time_notebooks.py").read_text()
    assert 'os.environ["COURSE_PLAIN_PROGRESS"] = "1"' in script.split("if args.in_place:", 1)[1][:200]
