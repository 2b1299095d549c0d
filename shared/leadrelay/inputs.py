"""The input policy: which text Leadrelay accepts, and how it is normalised, for every way in.

Every piece of text a client or another producer sends (form fields and their names,
behaviour events, notes and reasons, query parameters, and every event payload read
from a topic) goes through :func:`clean_text` before it is stored or compared, so the
same input gets the same answer whichever service, database or bus handles it:

- **Refused**: NUL (U+0000) and unpaired surrogates (U+D800-U+DFFF; ``"\\ud800"`` is
  valid JSON syntax but not Unicode text and has no UTF-8 encoding). PostgreSQL can
  store neither, so accepting them at the front door would acknowledge a lead that no
  consumer can process. The error names the field: a 422 over HTTP, a dead letter with
  the reason on a topic.
- **Removed**: every other C0 and C1 control character (U+0001-U+001F, U+007F-U+009F),
  except tab, line feed and carriage return. In multi-line text (notes, reasons, form
  fields a form builder may fill from a text area) those three are kept, with CR LF and
  lone CR turned into LF; in single-line text (names, ids, addresses, URLs) a tab or a
  line break (CR LF counts as one) becomes a space.
- **Normalised**: the result is NFC, so text that looks the same is the same string for
  lead ids, comparisons, account matching and storage.

Everything else is text and is kept as sent: letters of every script, combining marks,
emoji, bidi and zero-width formatting characters, private-use characters.

Pydantic models use the :data:`Text` and :data:`MultilineText` types for every string
field; :func:`clean_text` is for code that reads text without a model (form fields).
"""

from __future__ import annotations

import codecs
import contextlib
import re
import unicodedata
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# Refused outright: NUL and any surrogate code point (a str can only hold an unpaired one:
# a JSON decoder joins a valid pair into one character).
_REFUSED = re.compile("[\x00\ud800-\udfff]")
# Controls removed everywhere: C0 except tab, LF and CR; DEL; C1.
_CONTROLS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile("\r\n?")
_SINGLE_LINE_SPACES = re.compile("[\t\n]")


class InvalidText(ValueError):
    """Text the policy refuses; the message says which character and why (never the text itself)."""


def _refusal(match: re.Match[str]) -> InvalidText:
    char = match.group()
    if char == "\x00":
        return InvalidText("contains a NUL character (U+0000), which is not accepted in text")
    return InvalidText(
        f"contains an unpaired surrogate (U+{ord(char):04X}), which is not valid Unicode text; send the"
        " character itself or a complete surrogate pair"
    )


def clean_text(value: str, *, multiline: bool = False) -> str:
    """``value`` under the input policy (see the module docstring), or :class:`InvalidText`."""
    if value.isascii():
        # Fast path: ASCII is already NFC; only controls can need work.
        if value.isprintable():
            return value
        refused = _REFUSED.search(value)
        if refused:
            raise _refusal(refused)
        return _controls(value, multiline)
    refused = _REFUSED.search(value)
    if refused:
        raise _refusal(refused)
    if not value.isprintable():
        value = _controls(value, multiline)
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    return value


def _controls(value: str, multiline: bool) -> str:
    value = _LINE_BREAKS.sub("\n", _CONTROLS.sub("", value))
    return value if multiline else _SINGLE_LINE_SPACES.sub(" ", value)


def displayable(value: str) -> str:
    """``value`` with unpaired surrogates written as ``\\udXXX``, so it can be encoded (error messages)."""
    if value.isascii():
        return value
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", value)


def _single_line(value: str) -> str:
    try:
        return clean_text(value)
    except InvalidText as exc:
        raise PydanticCustomError("text_invalid", str(exc)) from None


def _multi_line(value: str) -> str:
    try:
        return clean_text(value, multiline=True)
    except InvalidText as exc:
        raise PydanticCustomError("text_invalid", str(exc)) from None


# What the OpenAPI document says of every text (NUL is refused; lone surrogates cannot be sent as UTF-8).
_NO_NUL = Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})

Text = Annotated[str, AfterValidator(_single_line), _NO_NUL]
"""A single-line string under the input policy: names, ids, addresses, URLs, query parameters."""

MultilineText = Annotated[str, AfterValidator(_multi_line), _NO_NUL]
"""A string under the input policy that keeps its line breaks and tabs: notes, reasons, form fields."""


def is_policy_validator(obj: Any) -> bool:
    """Whether ``obj`` (an item of a field's metadata) applies the input policy; for the tests that
    check every string field of every model carries it."""
    return isinstance(obj, AfterValidator) and obj.func in (_single_line, _multi_line)


def parse_urlencoded(
    body: bytes, max_fields: int, charset: str | None = None, charset_fields: tuple[str, ...] = ("_charset_",)
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """An ``application/x-www-form-urlencoded`` body as its fields (the last value of a repeated
    name), and the errors in FastAPI's 422 shape. Each name and value is percent-decoded to bytes,
    then decoded strictly in the form's charset: the one the content type names, else the one a
    field of ``charset_fields`` names (HTML's ``_charset_``, which a browser fills with the
    encoding it used; Web-to-Lead's ``encoding``), else UTF-8. Bytes that are not text in it
    (``%FF``, or ``%ED%A0%80``, an unpaired surrogate in UTF-8's form) are an error naming the
    field, not a replacement character stored in its place; UTF-8 sent without percent-encoding
    (``curl -d``) is read as UTF-8, not as Latin-1. The policy (:func:`clean_text`) applies
    afterwards, as to any other text. The charset fields are not among the fields returned."""
    fields: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    pairs = [p for p in body.split(b"&") if p]
    if len(pairs) > max_fields:
        errors.append({"loc": ["body"], "msg": f"more than {max_fields} fields", "type": "too_long"})
        return {}, errors
    decoded = [
        (unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" ")))
        for name, _, value in (pair.partition(b"=") for pair in pairs)
    ]
    if not charset:
        named = [v for n, v in decoded if n.decode("latin-1") in charset_fields and v.isascii()]
        charset = named[-1].decode("ascii").strip() if named else None
    encoding = "utf-8"
    if charset:
        with contextlib.suppress(LookupError):
            encoding = codecs.lookup(charset).name
    for name_bytes, value_bytes in decoded:
        try:
            name = name_bytes.decode(encoding)
        except UnicodeDecodeError as exc:
            shown = name_bytes.decode(encoding, errors="backslashreplace")
            errors.append(_undecodable(shown, "field name", encoding, exc))
            continue
        if name in charset_fields:
            continue  # how the form was encoded, not its data
        try:
            fields[name] = value_bytes.decode(encoding)
        except UnicodeDecodeError as exc:
            errors.append(_undecodable(displayable(name), "value", encoding, exc))
    return fields, errors


def _undecodable(field: str, what: str, encoding: str, exc: UnicodeDecodeError) -> dict[str, Any]:
    return {
        "loc": ["body", field],
        "msg": f"{what} is not {encoding} text ({exc.reason} at byte {exc.start}); "
        "percent-encode the UTF-8 bytes of each character",
        "type": "value_error",
    }
