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
