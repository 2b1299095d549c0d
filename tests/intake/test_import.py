"""``leadrelay import``: a CSV list through intake's form route (embedded services, in-process)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from leadrelay.csv_import import ImportError_, import_csv, read_rows, row_key
from tests.harness import SOURCE_KEYS, Harness, running, settings_for

LIST = """E-mail;First name;Last name;Company name;Job title;Country;Employees;Booth notes
anna.berg@nordvik.se;Anna;Berg;Nordvik Logistics AB;Head of Operations;Sweden;250;wants pricing
jan@brouwerij.nl;Jan;de Boer;Brouwerij BV;CTO;NL;51-200;
not-an-address;Bad;Row;X;;SE;;
lars@acme.se;Lars;;Acme;;Narnia;;
anna.berg@nordvik.se;Anna;Berg;Nordvik Logistics AB;Head of Operations;Sweden;250;wants pricing
"""


@pytest.fixture
async def h(tmp_path: Path) -> Harness:  # type: ignore[misc]
    async with running(settings_for(tmp_path)) as harness:
        yield harness


async def leads(h: Harness) -> dict[str, dict[str, object]]:
    r = await h.client.get("/v1/leads")
    assert r.status_code == 200, r.text
    return {str(x["lead_id"]): x for x in r.json()}


async def test_import_accepts_good_rows_rejects_bad_ones_and_a_second_run_creates_nothing(
    h: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "fair-2026.csv"
    path.write_text("\ufeff" + LIST, encoding="utf-8")  # as Excel saves it: a BOM, semicolons
    key = SOURCE_KEYS["list-import"]
    seen: list[int] = []
    result = await import_csv(
        path, h.as_(None), source="list-import", form="list-import", api_key=key, progress=seen.append
    )
    assert (result.accepted, result.rejected, len(seen)) == (3, 2, 5)
    assert result.rejected_file == tmp_path / "fair-2026.rejected.csv"
    with result.rejected_file.open(encoding="utf-8") as f:
        rejected = list(csv.DictReader(f))
    assert [r["E-mail"] for r in rejected] == ["not-an-address", "lars@acme.se"]
    assert rejected[0]["rejected_because"].startswith("email: ")
    assert rejected[1]["rejected_because"].startswith("country: unknown country 'Narnia'")
    await h.settle()
    first = await leads(h)
    assert len(first) == 2  # Anna's repeated row is one lead, one event
    anna = result.lead_ids[0]
    assert result.lead_ids[2] == anna
    engagement = [r["rule"] for r in first[anna]["reasons"] if r["category"] == "engagement"]  # type: ignore[union-attr]
    assert engagement == ["filled in a form (x1)"]

    again = await import_csv(path, h.as_(None), source="list-import", form="list-import", api_key=key)
    assert (again.accepted, again.rejected) == (3, 2)
    await h.settle()
    assert await leads(h) == first  # nothing new, nothing rescored


async def test_the_row_key_is_the_rows_content() -> None:
    row = {"email": "a@b.se", "name": "A"}
    assert row_key("s", "f", row) == row_key("s", "f", {"name": " A", "email": "a@b.se "})
    assert row_key("s", "f", row) != row_key("s", "f", {**row, "name": "B"})
    assert row_key("s", "f", row) != row_key("s2", "f", row)
    assert row_key("s", "f", row) != row_key("s", "f2", row)


async def test_a_file_without_an_email_column_or_an_unknown_form_is_refused(h: Harness, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("name,company\nA,B\n", encoding="utf-8")
    with pytest.raises(ImportError_, match="no e-mail column"):
        read_rows(path)
    path.write_text("email\na@acme.se\n", encoding="utf-8")
    with pytest.raises(ImportError_, match="does not know the form 'nope'"):
        await import_csv(path, h.as_(None), source="list-import", form="nope", api_key=None)


def test_the_import_key_comes_from_the_environment_else_the_embedded_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from leadrelay.auth import API_KEYS_FILE, generate_key
    from leadrelay.cli import import_key, main
    from tests.harness import example_rules

    rules = example_rules()
    settings = settings_for(tmp_path)
    monkeypatch.delenv("LEADRELAY_API_KEY_IMPORT", raising=False)
    with pytest.raises(LookupError, match="LEADRELAY_API_KEY_IMPORT is not set"):
        import_key(settings, rules, "list-import")
    stored = generate_key()
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / API_KEYS_FILE).write_text(json.dumps({"list-import": stored}), encoding="utf-8")
    assert import_key(settings, rules, "list-import") == stored  # `leadrelay run` generated it
    new, old = generate_key(), generate_key()
    monkeypatch.setenv("LEADRELAY_API_KEY_IMPORT", f"{new},{old}")  # during a rotation: the new one
    assert import_key(settings, rules, "list-import") == new
    with pytest.raises(LookupError, match="no source 'nope'"):
        import_key(settings, rules, "nope")
    # The command names the mistake and exits 2, before reading the file or calling intake.
    monkeypatch.setenv("LEADRELAY_CONFIG", str(settings.config))
    monkeypatch.setattr("leadrelay.cli.configure_logging", lambda *a: None)  # keep the suite's logging
    assert main(["import", str(tmp_path / "missing.csv"), "--source", "nope"]) == 2
    assert main(["import", str(tmp_path / "missing.csv"), "--source", "list-import"]) == 2
