"""``leadrelay import FILE.csv --source NAME [--form FORM]``: a trade-show or telemarketing list
through intake's front door.

Each row is posted to intake's ``POST /v1/forms/{form}/submissions``, the route website
forms use, so a row meets the same normalisation, input policy and lead definition as any
form, embedded or distributed, and intake stays the only writer of ``leads.intake``. (Going
to the bus directly with intake's code would need the broker's or the embedded log's
access on the importing machine, and a second path to keep equal to the first.) The posts
carry the source's API key (``X-API-Key``, from the variable the source names, or the
embedded data folder): intake then limits them by the source's rate, not the address's.

- Columns are named like form fields: the aliases of ``intake.domain`` apply
  (``E-mail``, ``First name``, ``Company name``, ``Telephone``...); other columns are kept
  as custom attributes. The delimiter (comma, semicolon, tab) is detected; UTF-8 with or
  without a byte-order mark.
- Each row's ``Idempotency-Key`` is a digest of the source, the form and the row's
  content, so its event id is stable: running the same file again creates nothing new
  (the consumers' inboxes drop the repeats), and a row repeated within the file counts once.
- Rows intake refuses are written with the reasons to ``FILE.rejected.csv`` (the row's
  columns and a ``rejected_because`` column); 429 and 503 are retried after ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RETRIES = 8
REASON = "rejected_because"


@dataclass
class ImportResult:
    accepted: int = 0
    rejected: int = 0
    rejected_file: Path | None = None
    lead_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.rejected


class ImportError_(RuntimeError):  # noqa: N801 - not the builtin ImportError
    """The file cannot be read as a list of leads."""


def rejected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.csv")


def read_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and the rows of a CSV file (delimiter detected)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportError_(f"cannot read {path}: {exc}") from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    header = [h for h in (reader.fieldnames or []) if h is not None]
    if not header:
        raise ImportError_(f"{path} has no header row")
    if not any(h.strip().lower().replace(" ", "_").replace("-", "_") in EMAIL_COLUMNS for h in header):
        raise ImportError_(f"{path} has no e-mail column (one of: {', '.join(sorted(EMAIL_COLUMNS))})")

    def rows() -> Iterator[dict[str, str]]:
        for row in reader:
            clean = {k: v for k, v in row.items() if k is not None and isinstance(v, str)}
            if any(v.strip() for v in clean.values()):
                yield clean

    return header, rows()


EMAIL_COLUMNS = frozenset({"email", "e_mail", "email_address"})


def row_key(source: str, form: str, row: dict[str, str]) -> str:
    """The row's idempotency key: the same row (same source, form and content) gets the same event id."""
    canonical = json.dumps([source, form, sorted((k.strip(), v.strip()) for k, v in row.items())], ensure_ascii=False)
    return "import:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:48]


def _reasons(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except ValueError:
        return f"HTTP {answer.status_code}: {answer.text[:200]}"
    if isinstance(detail, list):
        parts = []
        for e in detail:
            loc = e.get("loc", [])
            where = str(loc[-1]) if loc and loc[-1] != "body" else "row"
            parts.append(f"{where}: {e.get('msg')}")
        return "; ".join(parts)
    return f"HTTP {answer.status_code}: {detail}"


async def _post(
    client: httpx.AsyncClient, url: str, row: dict[str, str], key: str, headers: dict[str, str]
) -> httpx.Response:
    answer: httpx.Response | None = None
    for attempt in range(RETRIES):
        try:
            answer = await client.post(url, json=row, headers={**headers, "Idempotency-Key": key})
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
            await asyncio.sleep(min(2**attempt, 30))
            continue
        if answer.status_code not in (429, 503):
            return answer
        wait = answer.headers.get("retry-after", "1")
        await asyncio.sleep(min(float(wait) if wait.isdigit() else 1.0, 60.0))
    assert answer is not None
    return answer


async def import_csv(
    path: Path,
    client: httpx.AsyncClient,
    *,
    source: str,
    form: str,
    api_key: str | None,
    progress: Callable[[int], None] = lambda n: None,
) -> ImportResult:
    """Post every row of ``path`` to intake; write the refused ones to ``FILE.rejected.csv``."""
    header, rows = read_rows(path)
    forms = await client.get("/v1/forms")
    if forms.status_code != 200:
        raise ImportError_(f"intake did not list its forms: HTTP {forms.status_code}")
    known = [f.get("id") for f in forms.json()]
    if form not in known:
        raise ImportError_(f"intake does not know the form {form!r}; known forms: {', '.join(map(str, known))}")
    out = rejected_path(path)
    out.unlink(missing_ok=True)
    result = ImportResult()
    headers = {"X-API-Key": api_key} if api_key else {}
    url = f"/v1/forms/{form}/submissions"
    writer: Any = None
    handle = None
    try:
        for row in rows:
            fields = {k: v for k, v in row.items() if v.strip()}
            try:
                answer = await _post(client, url, fields, row_key(source, form, row), headers)
                reason = None if answer.status_code == 202 else _reasons(answer)
            except httpx.HTTPError as exc:
                reason = f"not sent: {exc!r}"
                answer = None
            if reason is None and answer is not None:
                result.accepted += 1
                result.lead_ids.append(str(answer.json()["lead_id"]))
            else:
                if writer is None:
                    handle = out.open("w", encoding="utf-8", newline="")
                    writer = csv.DictWriter(handle, fieldnames=[*header, REASON], extrasaction="ignore")
                    writer.writeheader()
                writer.writerow({**row, REASON: reason})
                result.rejected += 1
            progress(1)
    finally:
        if handle is not None:
            handle.close()
    result.rejected_file = out if result.rejected else None
    return result


def count_rows(path: Path) -> int:
    _, rows = read_rows(path)
    return sum(1 for _ in rows)
