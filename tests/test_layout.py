"""The library's shape: no import cycles, no private name used outside its module.

course_lib is read as a textbook, so each module must be readable on its own:
what it uses from another module is that module's public face. The checks
read the source with ``ast`` (imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "course_lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(source: str, module: str | None = None) -> tuple[set[str], list[str]]:
    """The course_lib modules ``source`` imports, and the private names it takes from them."""
    tree, edges, private, aliases = ast.parse(source), set(), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, node) if module else (node.module or "")
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    edges.add(f"{target}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
                elif target in MODULES:
                    edges.add(target)
                    if alias.name.startswith("_"):
                        private.append(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    edges.add(alias.name)
                    aliases[alias.asname or alias.name.split(".")[-1]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            private.append(f"{aliases[node.value.id]}.{node.attr}")
    return edges, private


def test_the_import_graph_has_no_cycles():
    graph = {name: imports(path.read_text(), name)[0] - {name} for name, path in MODULES.items()}
    cycles, state, stack = [], {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_is_used_across_modules_or_from_a_notebook():
    found = [f"{name}: {use}" for name, path in MODULES.items() for use in imports(path.read_text(), name)[1]
             if not use.startswith(name + ".")]
    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        found += [f"{notebook.name}: {use}" for use in imports(notebook.read_text())[1]]
    assert not found, "private names used from outside their module:\n" + "\n".join(found)


def test_the_library_modules_do_not_import_the_teaching_tools():
    """course_lib.teaching may use the library; the library needs nothing from it but the widget helper."""
    allowed = {"course_lib.teaching.plots"}  # show_in_output, for the widgets some method modules build
    found = [f"{name} imports {target}" for name, path in MODULES.items() if not name.startswith("course_lib.teaching")
             for target in imports(path.read_text(), name)[0]
             if target.startswith("course_lib.teaching") and target not in allowed]
    assert not found, "\n".join(found)


def test_every_test_the_readme_names_exists():
    """The README backs each promise with a named test: the names must not go stale."""
    import re

    readme = (REPO / "README.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`((?:, `::\w+`)*)", readme)
    assert len(named) >= 8
    for path, first, more in named:
        source = (REPO / path).read_text()
        for name in [first, *re.findall(r"`::(\w+)`", more)]:
            assert re.search(rf"^def {name}\(", source, re.M), f"README names {path}::{name}, which does not exist"


def readme_tree(package: str) -> set[str]:
    """The .py files the README's ```text tree of ``package/`` lists, as paths relative to the package."""
    import re

    readme = (REPO / "README.md").read_text()
    tree = readme.split(f"```text\n{package}/\n", 1)[1].split("```", 1)[0]
    listed, folders = set(), []
    for line in tree.splitlines():
        match = re.match(r"^([│ ]*)[├└]── (\S+)", line)
        if not match:
            continue
        depth, name = len(match.group(1)) // 4, match.group(2)
        folders[depth:] = [name.rstrip("/")] if name.endswith("/") else []
        if name.endswith(".py"):
            listed.add("/".join(folders[:depth] + [name]))
    return listed


def test_the_readme_tree_has_a_line_for_every_file_and_no_other():
    """The developer section's layouts of course_lib/ and course_tools/ (one line per file) follow the files."""
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    checks = {f for f in files if f.startswith("teaching/checks/")}  # one line: "common.py and nb01.py ... nb09.py"
    listed = readme_tree("course_lib")
    assert listed == files - checks, (f"files missing from the README tree: {sorted(files - checks - listed)}; "
                                      f"listed but absent: {sorted(listed - files)}")
    assert checks == {"teaching/checks/__init__.py", "teaching/checks/common.py"} | {
        f"teaching/checks/nb0{n}.py" for n in range(1, 10)}
    tools = {p.relative_to(REPO / "course_tools").as_posix() for p in (REPO / "course_tools").glob("*.py")}
    assert readme_tree("course_tools") == tools
