"""The lock files: every dependency pinned with hashes, every declared one locked, and the
environment `make install` built is the lock's (run `make lock` after changing a dependency)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECTS = [REPO / "shared" / "pyproject.toml", *sorted((REPO / "services").glob("*/pyproject.toml"))]
LOCAL = {canonicalize_name(tomllib.loads(p.read_text(encoding="utf-8"))["project"]["name"]) for p in PROJECTS}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked(path: Path) -> dict[str, str]:
    """name -> version; fails on a pin without a hash."""
    pins: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = PIN.match(line)
        if m is None:
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        assert "--hash=sha256:" in line or "--hash=sha256:" in following, f"{path.name}: {m.group(1)} has no hash"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def declared(include_dev: bool) -> list[Requirement]:
    out = []
    for project in PROJECTS:
        for spec in tomllib.loads(project.read_text(encoding="utf-8"))["project"].get("dependencies", []):
            out.append(Requirement(spec))
    if include_dev:
        for line in (REPO / "requirements-dev.txt").read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(Requirement(line))
    return out


@pytest.mark.parametrize(("lock", "dev"), [("requirements.lock", False), ("requirements-dev.lock", True)])
def test_every_declared_dependency_is_locked_in_range(lock: str, dev: bool) -> None:
    pins = locked(REPO / lock)
    assert not LOCAL & set(pins), f"{lock} pins Leadrelay's own packages: {LOCAL & set(pins)}"
    problems = []
    for req in declared(dev):
        name = canonicalize_name(req.name)
        if name in LOCAL or (req.marker is not None and not req.marker.evaluate()):
            continue
        if name not in pins:
            problems.append(f"{req} is not in {lock}")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{lock} pins {name}=={pins[name]}, outside {req}")
    assert not problems, "; ".join(problems) + " (run `make lock`)"


def test_the_environment_is_the_lock() -> None:
    """What `make install` installed is what requirements-dev.lock says, version for version."""
    differ = []
    for name, pinned in locked(REPO / "requirements-dev.lock").items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # a package for another platform or Python (the lock is universal)
        if canonicalize_name(installed) != canonicalize_name(pinned) and installed != pinned:
            differ.append(f"{name}: {installed} installed, {pinned} locked")
    assert not differ, "; ".join(differ) + " (make install installs from the lock)"
