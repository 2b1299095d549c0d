"""The house rules of CONTRIBUTING.md, checked on the source tree's syntax (no import is run).

``violations(root)`` walks ``root/services/*/<package>/`` and ``root/shared/leadrelay/`` and returns
one line per broken rule, naming the file, the line and the rule. The tests run it on the real tree
(it must be clean) and on small trees with one violation planted each (it must say so).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Where the SQL lives: a service's repository (its queries) and models (its tables).
QUERY_HOMES = {"repository.py", "models.py"}
# What a module outside them may take from SQLAlchemy: the session's type and its errors.
NOT_QUERIES = ("sqlalchemy.ext.asyncio", "sqlalchemy.exc")
FRAMEWORKS = ("sqlalchemy", "fastapi", "starlette", "httpx", "aiokafka", "asyncpg")

# Modules that still run their own queries, each to move into its service's repository. The test
# fails when one of them no longer does (so the list only shrinks) as well as when a new one does.
KNOWN_QUERIES_OUTSIDE_REPOSITORIES = {
    "services/sla-monitor/sla_monitor/delivery.py",
    "services/sla-monitor/sla_monitor/notifications.py",
}


@dataclass(frozen=True)
class Module:
    path: Path  # relative to the root
    package: str  # the top-level package it belongs to (``intake``, ``leadrelay``...)
    tree: ast.Module


def service_packages(root: Path) -> dict[str, Path]:
    """Package name -> its folder, for every service (the console among them)."""
    out: dict[str, Path] = {}
    for project in sorted((root / "services").glob("*")):
        for pkg in sorted(project.glob("*/__init__.py")):
            out[pkg.parent.name] = pkg.parent
        for pkg in sorted(project.glob("*/app.py")):  # a package without __init__ (the console)
            out.setdefault(pkg.parent.name, pkg.parent)
    return out


def modules(root: Path) -> Iterator[Module]:
    roots = dict(service_packages(root))
    shared = root / "shared" / "leadrelay"
    if shared.is_dir():
        roots["leadrelay"] = shared
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            if "migrations" in path.relative_to(folder).parts:
                continue
            yield Module(path.relative_to(root), package, ast.parse(path.read_text(), filename=str(path)))


def imports(tree: ast.Module) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) for every absolute import, also those inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]


def _top(module: str) -> str:
    return module.split(".")[0]


def violations(root: Path) -> list[str]:
    services = set(service_packages(root))
    found: list[str] = []
    for mod in modules(root):
        where = mod.path.as_posix()
        is_domain = mod.path.name == "domain.py" or "domain" in mod.path.parts[:-1]
        queries_here = False
        for line, name, _names in imports(mod.tree):
            top = _top(name)
            if mod.package == "leadrelay" and top in services:
                found.append(f"{where}:{line}: the shared library imports the service {top}")
            elif mod.package in services and top in services and top != mod.package:
                kind = "the console imports" if mod.package == "console" else "imports another service,"
                found.append(f"{where}:{line}: {kind} {top}")
            if is_domain and top in FRAMEWORKS:
                found.append(f"{where}:{line}: a domain module imports {top} (domain modules are pure)")
            if (
                mod.package in services
                and top == "sqlalchemy"
                and mod.path.name not in QUERY_HOMES
                and not name.startswith(NOT_QUERIES)
            ):
                queries_here = True
                if where not in KNOWN_QUERIES_OUTSIDE_REPOSITORIES:
                    found.append(f"{where}:{line}: SQL outside a repository ({name}); queries live in repository.py")
        if where in KNOWN_QUERIES_OUTSIDE_REPOSITORIES and not queries_here:
            found.append(f"{where}: no longer runs queries: take it off KNOWN_QUERIES_OUTSIDE_REPOSITORIES")
    return found
