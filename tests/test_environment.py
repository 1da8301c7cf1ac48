"""environment.yml, pyproject.toml and constraints.txt name the same packages and versions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def environment_pip_requirements(text: str) -> list[str]:
    """The entries of the ``- pip:`` list in an environment.yml (a tiny YAML subset parser)."""
    entries: list[str] = []
    pip_indent = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if pip_indent is None:
            if item in ("- pip:", "-pip:"):
                pip_indent = indent
            continue
        if indent <= pip_indent:
            break  # the pip list has ended
        if item.startswith("- "):
            entries.append(item[2:].strip().strip("'\""))
    if pip_indent is None:
        raise AssertionError("environment.yml has no '- pip:' list")
    return entries


def requirement_map(lines) -> dict[str, Requirement]:
    result = {}
    for line in lines:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name not in result, f"{requirement.name} is listed twice"
        result[name] = requirement
    return result


def test_tiny_yaml_parser_reads_the_pip_list():
    """The helper parser returns the pip entries only, stopping where the list ends."""
    text = """
name: x
dependencies:
  - python=3.11
  - pip
  - pip:
      - torch==2.0  # pinned
      - "numpy>=1.24"
      - -e .
  - other-conda-package
"""
    assert environment_pip_requirements(text) == ["torch==2.0", "numpy>=1.24", "-e ."]


@pytest.fixture(scope="module")
def manifests():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    pyproject_requirements = requirement_map(
        project["dependencies"] + project.get("optional-dependencies", {}).get("test", [])
    )
    environment_entries = environment_pip_requirements((REPO / "environment.yml").read_text())
    assert "-e ." in environment_entries, "environment.yml should install the course itself (-e .)"
    environment_requirements = requirement_map(e for e in environment_entries if e != "-e .")
    constraints = requirement_map(
        line.split("#", 1)[0].strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    )
    return pyproject_requirements, environment_requirements, constraints


def test_environment_yml_and_pyproject_list_the_same_packages(manifests):
    """environment.yml's pip list = pyproject dependencies + the 'test' extra."""
    pyproject_requirements, environment_requirements, _ = manifests
    assert set(environment_requirements) == set(pyproject_requirements)


def test_version_specifiers_agree_except_pinned_torch(manifests):
    """Every package has the same version specifier in both files (torch is pinned separately)."""
    pyproject_requirements, environment_requirements, _ = manifests
    for name, requirement in pyproject_requirements.items():
        if name == "torch" or name not in environment_requirements:
            continue
        assert environment_requirements[name].specifier == requirement.specifier, name


def test_environment_torch_pin_is_the_constraints_pin(manifests):
    """environment.yml pins torch to constraints.txt's version, which pyproject's range allows."""
    pyproject_requirements, environment_requirements, constraints = manifests
    assert "torch" in constraints
    pins = [s for s in constraints["torch"].specifier if s.operator == "=="]
    assert len(pins) == 1, f"constraints.txt should pin torch with ==, got {constraints['torch']}"
    assert environment_requirements["torch"].specifier == constraints["torch"].specifier
    assert pyproject_requirements["torch"].specifier.contains(pins[0].version)
