"""The package's shape: the protocol core imports no web framework, the emulator builds on the
core alone, and no module imports another that (directly or not) imports it back.

Read from the source, so imports inside functions and under ``TYPE_CHECKING`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "flask_webpubsub"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports, absolute, wherever in the file the import is."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # "from . import x" and "from .core import wire" may name submodules
            submodules = (f"{target}.{alias.name}" for alias in node.names)
            found.update(m for m in submodules if m in MODULES)
    return found


def own(name: str) -> set[str]:
    """The package's own modules that ``name`` imports (not itself, not its parents)."""
    return {
        m for m in imports(name) if m in MODULES and m != name and not name.startswith(m + ".")
    }


CORE = sorted(m for m in MODULES if m.startswith("flask_webpubsub.core"))
EMULATOR = sorted(m for m in MODULES if m.startswith("flask_webpubsub.emulator"))


@pytest.mark.parametrize("name", CORE)
def test_the_core_imports_no_web_framework(name: str) -> None:
    frameworks = {m for m in imports(name) if m.split(".")[0] in ("flask", "werkzeug")}
    assert not frameworks, f"{name} imports {sorted(frameworks)}"
    outside = {m for m in own(name) if not m.startswith("flask_webpubsub.core")}
    assert not outside, f"{name} imports {sorted(outside)}, outside the core"


@pytest.mark.parametrize("name", EMULATOR)
def test_the_emulator_builds_on_the_core_alone(name: str) -> None:
    outside = {
        m
        for m in own(name)
        if not m.startswith(("flask_webpubsub.core", "flask_webpubsub.emulator"))
    }
    assert not outside, f"{name} imports {sorted(outside)}"
    frameworks = {m for m in imports(name) if m.split(".")[0] in ("flask", "werkzeug")}
    assert not frameworks, f"{name} imports {sorted(frameworks)}"


def test_no_import_circle() -> None:
    graph = {name: own(name) for name in MODULES}
    circles: list[list[str]] = []
    # Tarjan's strongly connected components: a component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
                circles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert circles == []


def test_the_checks_see_imports() -> None:
    """The graph is not empty by accident: known edges are found."""
    assert "flask_webpubsub.core.wire" in own("flask_webpubsub.core.request")
    assert "flask_webpubsub.handling" in own("flask_webpubsub.views")
    assert "flask" in {m.split(".")[0] for m in imports("flask_webpubsub.views")}
