"""Forms on the company's website: the embed snippet, the tracking script, and where a plain HTML
post lands.

Pure: the scripts are rendered from the rules file once (their bytes, ETag and SRI hash are then
fixed until the rules change, so sites can pin them); the redirect targets are only the URLs the
rules name or pages on the form's allowed origins (no open redirect).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from intake.domain import field_key, posted_page
from intake.forms.messages import LABELS, MESSAGES, PAGE_MESSAGES
from leadrelay.rules import LANGUAGES, FieldType, Form, FormField, Labels, Website, web_origin

_TYPES = {
    "email": FieldType.EMAIL,
    "phone": FieldType.TEL,
    "country": FieldType.COUNTRY,
    "company_size": FieldType.NUMBER,
    "website": FieldType.URL,
    "message": FieldType.TEXTAREA,
}
DEFAULT_FIELDS = (
    FormField(name="email", type=FieldType.EMAIL, required=True),
    FormField(name="first_name"),
    FormField(name="last_name"),
    FormField(name="company"),
)
SCRIPT_CACHE = "public, max-age=300"  # the rules change only with a restart; sites pinning the hash see a change


def fields_of(form: Form) -> list[FormField]:
    """The fields the snippet shows: the rules file's, or the defaults (email, name, company)."""
    return list(form.fields) if form.fields else list(DEFAULT_FIELDS)


def _type(f: FormField) -> FieldType:
    """A known field keeps its kind when the rules file does not give one (phone is a phone)."""
    if f.type is FieldType.TEXT and "type" not in f.model_fields_set:
        return _TYPES.get(field_key(f.name), FieldType.TEXT)
    return f.type


def label(f: FormField, lang: str) -> str:
    if f.label is not None:
        return f.label.get(lang)
    known = LABELS.get(field_key(f.name))
    return known.get(lang, known["en"]) if known else f.name.replace("_", " ").capitalize()


def _labels(f: FormField) -> dict[str, str]:
    return {lang: label(f, lang) for lang in LANGUAGES}


def _texts(t: Labels) -> dict[str, str]:
    return {lang: t.get(lang) for lang in LANGUAGES}


@dataclass(frozen=True)
class Script:
    """A script's bytes with what a site needs to pin it."""

    body: bytes
    etag: str
    integrity: str

    @classmethod
    def of(cls, body: bytes) -> Script:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        integrity = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
        return cls(body, etag, integrity)


def _static(name: str) -> str:
    return files("intake").joinpath("static", name).read_text(encoding="utf-8")


def _json(value: Any) -> str:
    # Safe inside a script: no "</script>", no line separators JavaScript reads as line ends.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def embed_script(form: Form) -> Script:
    """``embed.js`` of a form: the static code with the form's fields, labels, consent and honeypot."""
    config = {
        "form": form.id,
        "fields": [
            {"name": f.name, "type": _type(f).value, "required": f.required, "label": _labels(f)}
            for f in fields_of(form)
        ],
        "consent": None
        if form.consent is None
        else {"field": form.consent.field, "required": form.consent.required, "text": _texts(form.consent.text)},
        "honeypot": form.honeypot,
        # The widget's public site key and the field its token comes in; how it is verified stays here.
        "captcha": None
        if form.captcha is None
        else {"kind": form.captcha.kind, "site_key": form.captcha.site_key, "field": form.captcha.token_field},
        "messages": MESSAGES,
    }
    return Script.of((_static("embed.js") + _json(config) + ");\n").encode())


def track_script(website: Website) -> Script:
    """``track.js`` with the rules file's privacy settings."""
    config = {
        "consent": website.require_consent,
        "dnt": website.honour_do_not_track,
        "gpc": website.honour_global_privacy_control,
    }
    return Script.of((_static("track.js") + _json(config) + ");\n").encode())


def paste_html(form: Form, base_url: str, embed: Script, track: Script) -> dict[str, str]:
    """What to paste into a page: the two-line embed, and the plain form the script enhances (which
    still posts, to the thank-you page, when scripts are blocked)."""
    base = base_url.rstrip("/")
    fid = html.escape(form.id)
    script = (
        f'<script src="{base}/v1/forms/{fid}/embed.js" integrity="{embed.integrity}" crossorigin="anonymous" async>'
        "</script>"
    )
    tracking = (
        f'<script src="{base}/v1/track.js" integrity="{track.integrity}" crossorigin="anonymous"'
        ' data-write-key="YOUR_WRITE_KEY" async></script>'
    )
    lines = [
        f'<form data-leadrelay-form="{fid}" action="{base}/v1/forms/{fid}/submissions" method="post" accept-charset="UTF-8">'
    ]
    for f in fields_of(form):
        kind = {FieldType.EMAIL: "email", FieldType.TEL: "tel"}.get(_type(f), "text")
        required = " required" if f.required else ""
        name = html.escape(f.name)
        text = html.escape(label(f, "en"))
        if _type(f) is FieldType.TEXTAREA:
            control = f'<textarea name="{name}"{required}></textarea>'
        else:
            control = f'<input type="{kind}" name="{name}"{required}>'
        lines.append(f"  <label>{text} {control}</label>")
    if form.consent:
        req = " required" if form.consent.required else ""
        lines.append(
            f'  <label><input type="checkbox" name="{html.escape(form.consent.field)}" value="yes"{req}>'
            f" {html.escape(form.consent.text.en)}</label>"
        )
    if form.honeypot:
        lines.append(
            f'  <input type="text" name="{html.escape(form.honeypot)}" tabindex="-1" autocomplete="off"'
            ' aria-hidden="true" style="position:absolute;left:-10000px">'
        )
    lines += ['  <button type="submit">Send</button>', "</form>", script]
    return {
        "embed": f'<div data-leadrelay-form="{fid}"></div>\n{script}',
        "html": "\n".join(lines),
        "tracking": tracking,
    }


# ---------------------------------------------------------------- where a plain HTML post lands


def wants_html(content_type: str, accept: str) -> bool:
    """A browser posting a plain HTML form (not a script or an API client asking for JSON)."""
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return False
    return "text/html" in accept.lower()


def _on_origins(form: Form, url: str | None) -> str | None:
    """``url`` if it is a web page on one of the form's origins, else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        origin = web_origin(f"{parts.scheme}://{parts.netloc}")
    except ValueError:
        return None
    return urlunsplit(parts._replace(fragment="")) if origin in form.origins else None


def _with(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("lr_")]
    return urlunsplit(parts._replace(query=urlencode(kept + params)))


def _bare_origin(url: str) -> bool:
    """Whether ``url`` names no page, only a site: what a browser's ``Referer`` is for a post to another
    origin under the default referrer policy (``strict-origin-when-cross-origin``)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.path in ("", "/") and not parts.query


def page_of(fields: dict[str, Any], referer: str | None) -> str | None:
    """The page the form was posted from: its ``page_url`` field (the snippet sets it), else the
    ``Referer`` when it names a page (a bare origin is only the site: going back there would land
    the visitor on the home page, without the form or its errors)."""
    page = posted_page(fields)
    if isinstance(page, str) and page:
        return page
    return referer if referer and not _bare_origin(referer) else None


def thank_you(form: Form, page: str | None) -> str | None:
    """Where a plain HTML post goes once accepted: the thank-you page, else back to the form's page
    (on an allowed origin) where the snippet says thank you; None: answer JSON."""
    if form.thank_you_url:
        return form.thank_you_url
    back = _on_origins(form, page)
    return _with(back, [("lr_form", form.id), ("lr_submitted", "1")]) if back else None


def error_page(form: Form, page: str | None, errors: list[dict[str, Any]] | str) -> str | None:
    """Where a plain HTML post with errors goes: the error URL or the form's page, with the errors as
    ``lr_error.<field>`` query parameters (a general one as ``lr_error``); None: answer JSON."""
    target = form.error_url or _on_origins(form, page)
    if target is None:
        return None
    params = [("lr_form", form.id)]
    if isinstance(errors, str):
        params.append(("lr_error", errors))
    else:
        for e in errors:
            loc = e.get("loc") or []
            name = str(loc[1]) if len(loc) > 1 else ""
            params.append((f"lr_error.{name}" if name else "lr_error", str(e.get("msg", ""))[:300]))
    return _with(target, params)


# ---------------------------------------------------------------- intake's own page for a plain post

# No script, no style, no image, no form: a page of text and one link.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def localised(form: Form, name: str, error: dict[str, Any], lang: str) -> str:
    """A field error as the snippet says it in ``lang`` (a missing field, a bad address or phone
    number, a consent box not ticked), else the server's own message. embed.js does the same."""
    m = MESSAGES.get(lang, MESSAGES["en"])
    if form.consent is not None and name == form.consent.field:
        return m["consent"]
    if form.captcha is not None and name == form.captcha.token_field:
        return m["captcha"]
    kind = next((_type(f) for f in fields_of(form) if f.name == name), _TYPES.get(field_key(name)))
    if error.get("type") == "missing":
        return m["required"]
    if kind is FieldType.EMAIL:
        return m["email"]
    if kind is FieldType.TEL:
        return m["phone"]
    if kind is FieldType.NUMBER:
        return m["number"]
    if kind is FieldType.URL:
        return m["url"]
    if kind is FieldType.COUNTRY:
        return m["country"]
    return str(error.get("msg", ""))[:300]


def back_link(form: Form, page: str | None, referer: str | None) -> str | None:
    """Where intake's page links back to: the form's page, else the site the post came from, when on
    one of the form's origins (no other address is ever linked)."""
    return _on_origins(form, page) or _on_origins(form, referer)


def answer_page(form: Form, lang: str, errors: list[dict[str, Any]] | str | None, back: str | None) -> str:
    """The page a plain HTML post gets when it has no page to land on (no thank-you or error URL, and
    no page of the form's origins to go back to): the thanks, or what to correct, in the visitor's
    language; never the API's JSON."""
    m, p = MESSAGES.get(lang, MESSAGES["en"]), PAGE_MESSAGES.get(lang, PAGE_MESSAGES["en"])
    labels = {f.name: label(f, lang) for f in fields_of(form)}
    if form.consent is not None:
        labels[form.consent.field] = form.consent.text.get(lang)
    if form.captcha is not None:
        labels[form.captcha.token_field] = ""  # the message says it all
    if errors is None:
        title, body = m["success"], f'<p class="lr-success">{html.escape(m["success"])}</p>'
    elif isinstance(errors, str):
        title, body = m["error"], f'<p class="lr-status">{html.escape(errors)}</p>'
    else:
        items = []
        for e in errors:
            loc = e.get("loc") or []
            name = str(loc[1]) if len(loc) > 1 else ""
            where = labels[name] if name in labels else LABELS.get(field_key(name), {}).get(lang, name)
            text = html.escape(localised(form, name, e, lang))
            items.append(f"<li><strong>{html.escape(where)}</strong>: {text}</li>" if where else f"<li>{text}</li>")
        title = form.name
        body = f'<p>{html.escape(p["fix"])}</p>\n<ul class="lr-error">{"".join(items)}</ul>'
    link = f'\n<p><a href="{html.escape(back)}">{html.escape(p["back"])}</a></p>' if back else ""
    return (
        f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}{link}\n</body></html>\n"
    )
