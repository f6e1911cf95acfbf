"""The package's import graph, read from the source with `ast` (module-level, TYPE_CHECKING and function-level
imports alike): no module imports itself through others (no circle), and the engine (modeling, media, image,
video) never reaches up into the app or the service."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = "sam2_plus"
ENGINE = ("sam2_plus.modeling", "sam2_plus.media", "sam2_plus.image", "sam2_plus.video")
ABOVE_ENGINE = ("sam2_plus.app", "sam2_plus.service")


def module_files(root: Path = REPO / PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name, from its __init__.py)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolved(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports anywhere in its source (`from x import name` counts as x.name
    when that is a module, else x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolved(node, module, path.name == "__init__.py")
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import a.b.c` imports a.b.c's nearest known module
                name = name.rpartition(".")[0]
            if name.startswith(PACKAGE) and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def a_circle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through a component's first module, as the path of imports (for the failure message)."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return paths[node] + [start]
            if target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    return component


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_package_has_no_import_circle():
    graph = import_graph()
    circles = [" -> ".join(a_circle(graph, component)) for component in cycles(graph)]
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_engine_does_not_import_the_app_or_the_service():
    graph = import_graph()
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() if _within(module, ENGINE)
                    for target in targets if _within(target, ABOVE_ENGINE))
    assert not upward, "the engine imports the app or the service:\n" + "\n".join(upward)


def test_the_graph_sees_every_kind_of_import():
    """The reader finds module-level, relative, TYPE_CHECKING and function-level imports (so the checks above
    can fail)."""
    graph = import_graph()
    assert "sam2_plus.modeling.sam2_model" in graph["sam2_plus.video.predictor"]  # relative, module level
    assert "sam2_plus.service" in graph["sam2_plus.app.jobs"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert a_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_type_checking_and_function_level_imports_count(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import x\n    import sam2_plus.sub.c\n")
    (package / "sub" / "c.py").write_text("")
    modules = module_files(package)
    graph = {module: imports_of(module, path, modules) for module, path in modules.items()}
    assert graph["sam2_plus.a"] == {"sam2_plus.sub.b"}
    assert graph["sam2_plus.sub.b"] == {"sam2_plus.a", "sam2_plus.sub.c"}
    assert cycles(graph) == [["sam2_plus.a", "sam2_plus.sub.b"]]
