"""CONTRIBUTING.md's house rules hold on the tree, and the checker catches each one broken; the
rule table of docs/architecture.md names functions and files that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.architecture import house_rules
from tests.architecture.house_rules import violations

ROOT = Path(__file__).resolve().parents[2]


def test_the_tree_keeps_the_house_rules() -> None:
    assert violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {
        "services/intake/intake/__init__.py": "",
        "services/scoring/scoring/__init__.py": "",
        "services/console/console/app.py": "",
        "shared/leadrelay/__init__.py": "",
        **files,
    }.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"services/intake/intake/service.py": "from sqlalchemy import select\n"},
            "services/intake/intake/service.py:1: SQL outside a repository",
        ),
        (
            {"services/intake/intake/api.py": "def f():\n    import sqlalchemy\n"},
            "services/intake/intake/api.py:2: SQL outside a repository",
        ),
        (
            {"services/intake/intake/service.py": "from scoring.domain import evaluate\n"},
            "services/intake/intake/service.py:1: imports another service, scoring",
        ),
        (
            {"services/console/console/views.py": "import scoring.service\n"},
            "services/console/console/views.py:1: the console imports scoring",
        ),
        (
            {"services/scoring/scoring/domain.py": "from fastapi import HTTPException\n"},
            "services/scoring/scoring/domain.py:1: a domain module imports fastapi",
        ),
        (
            {"services/scoring/scoring/domain.py": "from sqlalchemy.orm import Session\n"},
            "services/scoring/scoring/domain.py:1: a domain module imports sqlalchemy",
        ),
        (
            {
                "services/scoring/scoring/api.py": (
                    "async def f(ctx):\n    async with ctx.database.transaction() as session:\n        pass\n"
                )
            },
            "services/scoring/scoring/api.py:2: a plain transaction",
        ),
        (
            {"shared/leadrelay/rules.py": "from intake.domain import missing\n"},
            "shared/leadrelay/rules.py:1: the shared library imports the service intake",
        ),
    ],
)
def test_a_planted_violation_is_named(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert any(v.startswith(expected) for v in found), found


def test_what_may_stay_is_not_a_violation(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "services/intake/intake/repository.py": "from sqlalchemy import select\n",
            "services/intake/intake/models.py": "from sqlalchemy.orm import DeclarativeBase\n",
            "services/intake/intake/service.py": "from sqlalchemy.ext.asyncio import AsyncSession\nimport intake.domain\n",
            "services/intake/intake/domain.py": "from leadrelay.events import Disposition\n",
            "services/intake/intake/migrations/versions/0001.py": "import sqlalchemy as sa\n",
        },
    )
    assert violations(root) == []


@pytest.mark.parametrize(
    ("known", "says"),
    [("KNOWN_QUERIES_OUTSIDE_REPOSITORIES", "no longer runs queries"), ("KNOWN_PLAIN_TRANSACTIONS", "no longer opens")],
)
def test_a_known_exception_that_was_fixed_must_leave_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, known: str, says: str
) -> None:
    rel = "services/intake/intake/fixed.py"
    monkeypatch.setattr(house_rules, known, {rel})
    root = _tree(tmp_path, {rel: "x = 1\n"})
    (root / Path(rel).parent / "__init__.py").write_text("")
    assert any(v.startswith(f"{rel}: {says}") for v in house_rules.violations(root))


def _defined(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of a module, and the methods of its classes."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {
                    f"{node.name}.{n.name}" for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                }
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _source(rel: str) -> Path:
    """A path of the rule table (``scoring/domain.py``, ``shared/leadrelay/auth.py``) in the tree."""
    direct = ROOT / rel
    if direct.exists():
        return direct
    matches = [p for p in (ROOT / "services").glob(f"*/{rel}")]
    assert len(matches) == 1, f"docs/architecture.md names {rel}: found {matches}"
    return matches[0]


def test_the_rule_table_names_what_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("| rule | file |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    assert len(rows) > 10
    for row in rows:
        cell = row.rstrip(" |").rsplit("|", 1)[1]
        files = re.findall(r"`([\w/.-]+\.py)`(?: \(([^)]*)\))?", cell)
        assert files, f"no file in the rule table's row {row!r}"
        for rel, names in files:
            path = _source(rel)
            defined = _defined(path)
            for name in re.findall(r"`([\w.]+)`", names):
                assert name in defined, f"docs/architecture.md: {rel} has no {name} (row {row!r})"
