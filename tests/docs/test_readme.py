"""The README is short, every link of the README and the guides leads somewhere, and the README's
"Try it" runs as written against a fresh `leadrelay run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.distributed import free_port
from tests.harness import EXAMPLE

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted([README, REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    h = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _outside_code(path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move the detail into a guide in docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_leads_somewhere(doc: Path) -> None:
    broken = []
    for target in LINK.findall(_outside_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


def try_it() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Try it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's Try it has one shell block"
    return blocks[0]


@pytest.mark.slow
def test_try_it_runs_as_written(tmp_path: Path) -> None:
    leadrelay = REPO / ".venv" / "bin" / "leadrelay"
    if not leadrelay.exists():
        pytest.skip(".venv/bin/leadrelay is missing: run make install")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    env.update(LEADRELAY_DATA_DIR=str(tmp_path / "data"), LEADRELAY_CONFIG=str(EXAMPLE))
    log = tmp_path / "run.log"
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "leadrelay.cli", "run", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        result = subprocess.run(  # noqa: S603
            ["bash", "-euo", "pipefail", "-c", try_it()],  # noqa: S607
            cwd=REPO,
            env={**env, "LEADRELAY_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"Try it failed:\n{result.stdout}\n{result.stderr}\n{log.read_text()[-2000:]}"
        out = result.stdout
        lead = re.search(r"^lead ([0-9a-f-]{36})$", out, re.M)
        assert lead is not None, out
        assert '"rep_id":"astrid.lindqvist"' in out.replace(" ", ""), out
        assert '"disposition":"accepted"' in out.replace(" ", ""), out
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_readme_links_every_guide() -> None:
    linked = {t.partition("#")[0] for t in LINK.findall(_outside_code(README.read_text(encoding="utf-8")))}
    missing = [g.name for g in sorted((REPO / "docs").glob("*.md")) if f"docs/{g.name}" not in linked]
    assert not missing, f"README.md's Documentation does not link {missing}"


def test_every_environment_variable_is_in_the_configuration_guide() -> None:
    from leadrelay.settings import Settings

    guide = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [f"LEADRELAY_{n.upper()}" for n in Settings.model_fields if f"LEADRELAY_{n.upper()}`" not in guide]
    assert not missing, f"docs/configuration.md does not document {missing}"
