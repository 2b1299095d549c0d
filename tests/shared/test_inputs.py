"""leadrelay.inputs: the input policy, and every string field of every model under it."""

from __future__ import annotations

import json
import typing
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import settings as hsettings
from pydantic import BaseModel, ValidationError

from leadrelay.bus.memory import MemoryBus
from leadrelay.clock import FrozenClock
from leadrelay.events import EVENT_TYPES, DecodeError, Envelope, TouchLogged
from leadrelay.inputs import (
    InvalidText,
    MultilineText,
    Text,
    clean_text,
    displayable,
    is_policy_validator,
    parse_urlencoded,
)
from leadrelay.runtime import Runtime, load_services
from tests.harness import example_rules, settings_for
from tests.hostile import hostile_text
from tests.shared.test_events import LEAD, T, envelope, sample

# ------------------------------------------------------------ the policy


@pytest.mark.parametrize(
    ("raw", "single", "multi"),
    [
        ("Anna Berg", "Anna Berg", "Anna Berg"),
        ("Åsa", "Åsa", "Åsa"),
        ("A\u030asa", "Åsa", "Åsa"),  # decomposed: NFC
        ("Ber\x07g", "Berg", "Berg"),  # BEL removed
        ("\x1b[31mred\x1b[0m", "[31mred[0m", "[31mred[0m"),  # ESC removed, the rest is text
        ("a\x7fb\x85c\x9fd", "abcd", "abcd"),  # DEL and C1 removed
        ("line 1\r\nline 2\rline 3\nend", "line 1 line 2 line 3 end", "line 1\nline 2\nline 3\nend"),
        ("a\tb", "a b", "a\tb"),
        ("\u202eevil\u202c \u2066iso\u2069 \u200d", "\u202eevil\u202c \u2066iso\u2069 \u200d", None),  # bidi stays
        ("👩\u200d👩\u200d👧 漢字 مدير", "👩\u200d👩\u200d👧 漢字 مدير", None),
        ("\u2028\ufeff\uffff", "\u2028\ufeff\uffff", None),  # not controls: text
        ("", "", ""),
    ],
)
def test_clean_text(raw: str, single: str, multi: str | None) -> None:
    assert clean_text(raw) == single
    assert clean_text(raw, multiline=True) == (single if multi is None else multi)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("N\x00", "NUL character (U+0000)"),
        ("\x00", "NUL"),
        ("Åsa\x00", "NUL"),
        ("\ud800", "unpaired surrogate (U+D800)"),
        ("x\udfff", "unpaired surrogate (U+DFFF)"),
        ("漢\udc00字", "U+DC00"),
    ],
)
@pytest.mark.parametrize("multiline", [False, True])
def test_nul_and_unpaired_surrogates_are_refused(raw: str, needle: str, multiline: bool) -> None:
    with pytest.raises(InvalidText, match=needle.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        clean_text(raw, multiline=multiline)


@hsettings(max_examples=500)
@given(hostile_text)
def test_clean_text_gives_storable_nfc_text_or_refuses_with_a_reason(raw: str) -> None:
    refused = "\x00" in raw or any(0xD800 <= ord(c) <= 0xDFFF for c in raw)
    for multiline in (False, True):
        try:
            out = clean_text(raw, multiline=multiline)
        except InvalidText as exc:
            assert refused, raw
            assert "U+" in str(exc)
            continue
        assert not refused, raw
        out.encode("utf-8")  # storable: no surrogate left
        assert unicodedata.is_normalized("NFC", out)
        allowed = "\t\n" if multiline else ""
        assert not [c for c in out if unicodedata.category(c) == "Cc" and c not in allowed], repr(out)
        assert clean_text(out, multiline=multiline) == out  # idempotent: events re-validate what intake cleaned


def test_displayable_escapes_only_surrogates() -> None:
    assert displayable("a\ud800b") == "a\\ud800b"
    assert displayable("Åsa\x00") == "Åsa\x00"
    json.dumps(displayable("\udfff"), ensure_ascii=False).encode()


class _Sample(BaseModel):
    name: Text
    note: MultilineText | None = None
    tags: dict[Text, Text] = {}


def test_the_pydantic_types_clean_and_name_the_field() -> None:
    m = _Sample(name="A\u030asa\tB", note="1\r\n2\x07", tags={"k\x01": "v\n"})
    assert (m.name, m.note, m.tags) == ("Åsa B", "1\n2", {"k": "v "})
    with pytest.raises(ValidationError) as err:
        _Sample(name="ok", note="N\x00", tags={"\ud800": "x"})
    errors = {tuple(e["loc"]): e for e in err.value.errors()}
    assert errors[("note",)]["type"] == "text_invalid"
    assert "NUL" in errors[("note",)]["msg"]
    (key_error,) = [e for loc, e in errors.items() if loc[0] == "tags" and loc[-1] == "[key]"]
    assert "surrogate" in key_error["msg"]


# ------------------------------------------------------------ every model carries it


def _unguarded(annotation: Any, where: str, seen: set[type]) -> list[str]:
    """Paths of string types under ``annotation`` that do not carry the policy's validator."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        if base is str:
            return [] if any(is_policy_validator(m) for m in metadata) else [where]
        return _unguarded(base, where, seen)
    if annotation is str:
        return [where]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        out: list[str] = []
        for name, field in annotation.model_fields.items():
            if field.annotation is not None:
                wrapped = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
                out += _unguarded(wrapped, f"{annotation.__name__}.{name}", seen)
        return out
    return [p for arg in typing.get_args(annotation) for p in _unguarded(arg, f"{where}[]", seen)]


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=lambda m: m.__name__)
def test_every_text_field_of_every_event_is_under_the_policy(model: type[BaseModel]) -> None:
    assert _unguarded(model, model.__name__, set()) == []


def _flat(routes: list[Any]) -> list[Any]:
    """The routes, with those of the routers included in them."""
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)
        out += _flat(list(included.routes)) if included is not None else [route]
    return out


def test_every_text_input_of_every_route_is_under_the_policy(tmp_path: Path) -> None:
    """Bodies and query parameters of every route of every service; path parameters are ids or
    UUIDs looked up, never stored. Intake reads its bodies itself: ActivityIn is checked here,
    form fields by the intake tests."""
    from intake.api import ActivityIn

    runtime = Runtime(load_services(), settings_for(tmp_path), example_rules(), FrozenClock(), MemoryBus())
    routes = _flat(
        [r for svc, ctx in zip(runtime.definitions, runtime.contexts, strict=True) for r in svc.router(ctx).routes]
    )
    paths = {r.path for r in routes if isinstance(r, APIRoute)}
    # The included routers count too (FastAPI keeps them as routers of their own, not as routes).
    assert {"/v1/notifications/deliveries", "/v1/batch", "/servlet/servlet.WebToLead"} <= paths, sorted(paths)
    unguarded = _unguarded(ActivityIn, "ActivityIn", set())
    checked = 1
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        params = route.dependant.query_params + route.dependant.body_params
        for param in params:
            checked += 1
            annotation = param.field_info.annotation
            metadata = param.field_info.metadata
            wrapped = typing.Annotated[(annotation, *metadata)] if metadata else annotation
            unguarded += _unguarded(wrapped, f"{route.path} {param.name}", set())
    assert checked > 10
    assert unguarded == []


def test_the_checker_finds_a_plain_string() -> None:
    class Loose(BaseModel):
        fine: Text
        loose: str | None
        nested: dict[str, list[Text]]

    assert _unguarded(Loose, "Loose", set()) == ["Loose.loose[]", "Loose.nested[]"]


# ------------------------------------------------------------ event models refuse bad text


@pytest.mark.parametrize("bad", ["N\x00", "\x00"])
def test_an_event_with_a_nul_is_invalid(bad: str) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        TouchLogged(lead_id=LEAD, rep_id="jonas.becker", channel="call", note=bad, touched_at=T)
    with pytest.raises(ValidationError, match="NUL"):
        TouchLogged(lead_id=LEAD + bad, rep_id="jonas.becker", channel="call", touched_at=T)


def _with_text(value: Any, bad: str) -> Any:
    """The JSON value with ``bad`` appended to every string in it (enums and dates break too,
    which is fine: the record must be refused either way)."""
    if isinstance(value, str):
        return value + bad
    if isinstance(value, list):
        return [_with_text(v, bad) for v in value]
    if isinstance(value, dict):
        return {k: _with_text(v, bad) for k, v in value.items()}
    return value


def _text_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _text_paths(v, (*path, i))]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _text_paths(v, (*path, k))]
    return []


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _set(value[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"])
def test_a_record_with_bad_text_in_any_field_is_undecodable(cls: type, bad: str) -> None:
    """Written to a topic by someone else: each text field in turn carries a NUL or an unpaired
    surrogate (as JSON escapes), and the record is refused with the reason, never handled."""
    good = envelope(sample(cls)).to_record()
    payload = json.loads(good.value)
    paths = _text_paths(payload)
    assert paths
    policy_refusals = 0
    for path in paths:
        text = payload
        for part in path:
            text = text[part]
        raw = json.dumps(_set(payload, path, "__BAD__")).replace("__BAD__", text.replace('"', '\\"') + bad)
        record = Envelope.to_record(envelope(sample(cls)))
        record = type(record)(topic=record.topic, key=record.key, value=raw.encode(), headers=record.headers)
        with pytest.raises(DecodeError, match=r"invalid .* payload") as err:
            Envelope.from_record(record)
        reason = str(err.value)
        # The reason names the field (a NUL: text_invalid, or the date or enum it broke); an
        # unpaired surrogate escape is not even JSON to pydantic's parser.
        if bad == "\\u0000":
            assert f"'loc': ({path[0]!r}," in reason, (path, reason[:300])
            if "text_invalid" in reason:
                assert "NUL" in reason
                policy_refusals += 1
        else:
            assert "json_invalid" in reason, (path, reason[:300])
    if bad == "\\u0000":
        assert policy_refusals > 0  # the text fields, refused by the policy itself


@pytest.mark.parametrize("event_id", ["evt\x00", "evt\x07", "e" * 65, "\u202e" + "x" * 64])
def test_a_record_with_a_bad_event_id_is_undecodable(event_id: str) -> None:
    record = envelope(sample(TouchLogged)).to_record()
    headers = tuple((k, event_id.encode() if k == "ce_id" else v) for k, v in record.headers)
    with pytest.raises(DecodeError, match="bad ce_id"):
        Envelope.from_record(type(record)(topic=record.topic, key=record.key, value=record.value, headers=headers))


@pytest.mark.parametrize(
    ("body", "charset", "fields"),
    [
        (b"a=1&b=x+y&c=%C3%A5&d=&e", None, {"a": "1", "b": "x y", "c": "å", "d": "", "e": ""}),
        ("a=Åsa".encode(), None, {"a": "Åsa"}),  # UTF-8 not percent-encoded
        (b"a=%C5sa", "iso-8859-1", {"a": "Åsa"}),
        (b"a=%C5sa", "latin1", {"a": "Åsa"}),
        (b"a=1&a=2&&", None, {"a": "2"}),  # the last of a repeated name, as Starlette's FormData
        (b"a=%00", None, {"a": "\x00"}),  # valid UTF-8: the policy refuses it afterwards
        (b"a=%C3%A5", "no-such-charset", {"a": "å"}),  # an unknown charset: UTF-8
        (b"_charset_=windows-1252&a=M%FCller", None, {"a": "Müller"}),  # HTML's _charset_ field
        (b"a=M%C3%BCller&_charset_=UTF-8", None, {"a": "Müller"}),
        (b"_charset_=windows-1252&a=M%C3%BCller", "utf-8", {"a": "Müller"}),  # the content type first
    ],
)
def test_parse_urlencoded(body: bytes, charset: str | None, fields: dict[str, str]) -> None:
    assert parse_urlencoded(body, 10, charset) == (fields, [])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b"a=%FF", ["body", "a"]),
        (b"a=%ED%A0%80", ["body", "a"]),
        (b"a=\xff", ["body", "a"]),
        (b"%FFa=1", ["body", "\\xffa"]),
    ],
)
def test_parse_urlencoded_refuses_bytes_that_are_not_text(body: bytes, loc: list[str]) -> None:
    fields, errors = parse_urlencoded(b"ok=1&" + body, 10)
    assert [e["loc"] for e in errors] == [loc] and fields.get("ok") == "1"
    assert "not utf-8 text" in errors[0]["msg"]


def test_parse_urlencoded_counts_the_fields() -> None:
    assert parse_urlencoded(b"&".join(b"f%d=x" % i for i in range(11)), 10)[1][0]["loc"] == ["body"]
    assert parse_urlencoded(b"&".join(b"f%d=x" % i for i in range(10)), 10)[1] == []


def test_parse_urlencoded_takes_the_charset_from_the_fields_it_is_told() -> None:
    body = b"encoding=ISO-8859-1&last_name=M%FCller"
    assert parse_urlencoded(body, 10, None, ("_charset_", "encoding")) == ({"last_name": "Müller"}, [])
    fields, errors = parse_urlencoded(body, 10)  # `encoding` is an ordinary field here
    assert [e["loc"] for e in errors] == [["body", "last_name"]] and fields == {"encoding": "ISO-8859-1"}
