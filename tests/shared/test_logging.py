"""leadrelay.logging: nothing a client sends can forge a log line, in JSON or on the console."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import settings as hsettings

from leadrelay.logging import configure_logging, escape_unprintable
from tests.hostile import hostile_text

FORGERY = 'Berg\n2026-05-01T10:00:00Z [info     ] event_accepted lead_id=x\n{"event": "forged", "level": "info"}'
HOSTILE = FORGERY + "\r\x00\x1b[2J\x85\u2028\u2029\u202e\u2066\ud800 end"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def lines(err: str) -> list[str]:
    return [line for line in err.split("\n") if line]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_escape_everything_and_keep_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    structlog.get_logger("test").warning(HOSTILE, company=HOSTILE, fields={HOSTILE: [HOSTILE]})
    logging.getLogger("uvicorn.error").warning("Invalid request from %s", HOSTILE)
    out = lines(capsys.readouterr().err)
    assert len(out) == 2, out
    for line in out:
        assert line.isascii() and line.isprintable(), line
    ours, theirs = (json.loads(line) for line in out)
    assert ours["event"] == HOSTILE and ours["company"] == HOSTILE and ours["fields"] == {HOSTILE: [HOSTILE]}
    assert theirs["event"] == "Invalid request from " + HOSTILE
    assert theirs["logger"] == "uvicorn.error" and theirs["level"] == "warning"


@pytest.mark.usefixtures("restore_logging")
def test_console_lines_escape_unprintable_characters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "console")
    structlog.get_logger("test").info("event_accepted", company=HOSTILE, note=["a\nb"])
    logging.getLogger("aiokafka").warning("broker said %s", HOSTILE)
    out = lines(capsys.readouterr().err)
    assert len(out) == 2, out
    for line in out:
        plain = line.replace("\x1b[", "")  # the renderer's own colours, if any
        assert all(c.isprintable() for c in plain.replace("\x1b", "")), repr(line)
        for escape in ("\\n2026-05-01T10:00:00Z", "\\x00", "\\x1b[2J", "\\x85", "\\u2028", "\\u202e", "\\ud800"):
            assert escape in line, (escape, line)
    assert "forged" not in "".join(line.split("\\n")[0] for line in out)


@pytest.mark.usefixtures("restore_logging")
def test_a_traceback_keeps_its_lines_on_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "console")
    try:
        raise ValueError("bad\x00value")
    except ValueError:
        structlog.get_logger("test").exception("handler_failed")
    err = capsys.readouterr().err
    assert "Traceback" in err and "\n" in err.strip()
    assert "ValueError: bad\\x00value" in err  # the message, not the source line quoted above it


@hsettings(max_examples=300)
@given(hostile_text)
def test_escaped_text_is_one_printable_line(text: str) -> None:
    escaped = escape_unprintable(text)
    assert escaped.isprintable()
    assert (escaped == text) is text.isprintable()
    kept = escape_unprintable(text, keep="\n")
    assert all(part.isprintable() for part in kept.split("\n"))
