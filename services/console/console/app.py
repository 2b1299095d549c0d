"""The console: server-rendered pages (Jinja2) with htmx, over the services' HTTP APIs.

Two ways to run it, one set of routes (:func:`router`):

- embedded (``leadrelay run``): :meth:`Plugin.embedded` adds the pages to the app of the five
  services, and the console calls that same app over ASGI;
- its own process (``leadrelay serve console``): :meth:`Plugin.standalone` builds a small app
  that reaches each service at its base URL.

The console holds no data and decides no permission: every read and every change is a call to
a service with the signed-in person's own token, and the service says yes or no.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from console import i18n, live, views
from console.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LANG_COOKIE,
    SESSION_COOKIE,
    Csrf,
    clear_session,
    safe_next,
    secure_headers,
    set_language,
    set_session,
)
from console.services import Me, Reply, Services, Unavailable, gather
from leadrelay import __version__
from leadrelay.auth import AuthConfigError, key_problem, load_or_create_key
from leadrelay.logging import get_logger
from leadrelay.settings import Settings

log = get_logger("console")
HERE = Path(__file__).parent
STATIC = HERE / "static"
SECRET_FILE = "console-secret-key"  # noqa: S105 - the file's name, not a secret
ASSETS = ("console.css", "console.js", "htmx.min.js")


def _asset_versions() -> dict[str, str]:
    """``/static/<file>?v=<hash>``: browsers may cache each file until its content changes."""
    out = {}
    for name in ASSETS:
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
        out[name] = f"/static/{name}?v={digest}"
    return out


class Static(StaticFiles):
    """The vendored and own static files, with the console's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        secure_headers(response.headers, private=False)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


@dataclass
class Console:
    services: Services
    csrf: Csrf
    poll_seconds: float = 1.0
    templates: jinja2.Environment = field(init=False)
    assets: dict[str, str] = field(default_factory=_asset_versions)
    # Set by `leadrelay` when uvicorn is asked to stop: live streams end instead of holding it up.
    should_exit: Callable[[], bool] = lambda: False

    def __post_init__(self) -> None:
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(duration=i18n.duration, person_name=views.person_name)

    # ------------------------------------------------------------------ requests

    @staticmethod
    def lang(request: Request) -> str:
        chosen = request.cookies.get(LANG_COOKIE, "")
        return chosen if chosen in i18n.CATALOGUES else i18n.negotiate(request.headers.get("accept-language"))

    @staticmethod
    def token(request: Request) -> str | None:
        return request.cookies.get(SESSION_COOKIE) or None

    def fragment(self, template: str, lang: str, **ctx: Any) -> str:
        return self.templates.get_template(template).render(t=i18n.translator(lang), lang=lang, **ctx)

    def render(
        self,
        request: Request,
        template: str,
        me: Me | None = None,
        code: int = 200,
        **ctx: Any,
    ) -> HTMLResponse:
        lang = self.lang(request)
        nonce, new = Csrf.browser_nonce(request)
        csrf = self.csrf.token(nonce, self.token(request))
        html = self.templates.get_template(template).render(
            t=i18n.translator(lang),
            lang=lang,
            languages=i18n.NAMES,
            me=me,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            assets=self.assets,
            path=request.url.path,
            here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            version=__version__,
            **ctx,
        )
        response = HTMLResponse(html, status_code=code)
        secure_headers(response.headers)
        if new:
            Csrf.set_nonce(response, request, nonce)
        return response

    def error(self, request: Request, me: Me | None, status: int, message: str) -> HTMLResponse:
        return self.render(request, "error.html", me, code=status, message=message)

    def unavailable(self, request: Request, me: Me | None, exc: Unavailable) -> HTMLResponse:
        t = i18n.translator(self.lang(request))
        response = self.error(request, me, 503, t("unavailable", service=exc.service))
        response.headers["Retry-After"] = "2"
        return response

    async def signed_in(self, request: Request) -> tuple[str, Me] | Response:
        """The person's token and who they are, or a redirect to the sign-in page."""
        token = self.token(request)
        if token is None:
            return self.redirect(request, "/login?next=" + _quote(request.url.path))
        me = await self.services.me(token)
        if me is None:
            response = self.redirect(request, "/login?ended=1&next=" + _quote(request.url.path))
            clear_session(response, request)
            return response
        return token, me

    async def signed_in_form(self, request: Request) -> tuple[str, Me, dict[str, str]] | Response:
        """For an action: the person's token, who they are and the posted form; or the sign-in
        redirect, or a 403 when the form's CSRF token is not this session's."""
        who = await self.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        form = await self.form(request)
        if form is None:
            return self.error(request, me, 403, i18n.translator(self.lang(request))("csrf_failed"))
        return token, me, form

    def redirect(self, request: Request, to: str) -> Response:
        """303 to ``to``; for htmx, an ``HX-Redirect`` so the whole page goes there."""
        if request.headers.get("hx-request"):
            response: Response = Response(status_code=204, headers={"HX-Redirect": to})
        else:
            response = RedirectResponse(to, status_code=303)
        secure_headers(response.headers)
        return response

    async def form(self, request: Request) -> dict[str, str] | None:
        """The posted form if its CSRF token is this browser's for this session, else None."""
        data = await request.form()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        presented = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
        if not self.csrf.valid(presented, request.cookies):
            log.info("csrf_rejected", path=request.url.path)
            return None
        return fields


def _quote(path: str) -> str:
    return quote(path, safe="/")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _now() -> datetime:
    return datetime.now(UTC)


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    services = console.services

    # ---------------------------------------------------------------- sign-in

    @r.get("/login")
    async def login_page(request: Request, token: str | None = None, next: str | None = None) -> Response:
        t = i18n.translator(console.lang(request))
        ctx: dict[str, Any] = {"next": safe_next(next), "confirm": None, "error": None, "notice": None}
        if request.query_params.get("ended"):
            ctx["notice"] = t("session_ended")
        if request.query_params.get("bye"):
            ctx["notice"] = t("signed_out")
        if token:
            # A link with a token: say who it signs in as, and sign in only on a click (a POST
            # with this page's CSRF token), so a link from elsewhere cannot sign anyone in.
            try:
                reply = await services.get(token.strip(), "sla-monitor", "/v1/me")
            except Unavailable as exc:
                return console.unavailable(request, None, exc)
            if reply.ok and isinstance(reply.data, dict) and reply.data.get("kind") == "person":
                ctx["confirm"] = {"token": token.strip(), "name": reply.data["name"], "role": reply.data["role"]}
            else:
                ctx["error"] = t("login_invalid", reason=reply.detail if not reply.ok else "not a person")
        return console.render(request, "login.html", None, code=200 if not ctx["error"] else 401, **ctx)

    @r.post("/login")
    async def login(request: Request) -> Response:
        t = i18n.translator(console.lang(request))
        form = await console.form(request)
        if form is None:
            return console.render(
                request, "login.html", None, 403, next="/", confirm=None, notice=None, error=t("csrf_failed")
            )
        token = form.get("token", "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        nxt = safe_next(form.get("next"))
        if not token:
            return console.render(
                request, "login.html", None, 422, next=nxt, confirm=None, notice=None, error=t("login_empty")
            )
        try:
            reply = await services.get(token, "sla-monitor", "/v1/me")
        except Unavailable as exc:
            return console.unavailable(request, None, exc)
        if not reply.ok or not isinstance(reply.data, dict) or reply.data.get("kind") != "person":
            reason = reply.detail if not reply.ok else "an API key is not a person's token"
            return console.render(
                request,
                "login.html",
                None,
                401,
                next=nxt,
                confirm=None,
                notice=None,
                error=t("login_invalid", reason=reason),
            )
        expires = views.parse_time(reply.data.get("expires_at"))
        max_age = int((expires - _now()).total_seconds()) if expires else 12 * 3600
        response = console.redirect(request, nxt)
        set_session(response, request, token, max_age)
        log.info("console_signed_in", person=reply.data["id"], role=reply.data["role"])
        return response

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        form = await console.form(request)
        if form is None:
            return console.error(request, None, 403, i18n.translator(console.lang(request))("csrf_failed"))
        token = console.token(request)
        if token:
            services.forget(token)
        response = console.redirect(request, "/login?bye=1")
        clear_session(response, request)
        return response

    @r.post("/lang")
    async def language(request: Request) -> Response:
        form = await console.form(request)
        if form is None:
            return console.error(request, None, 403, i18n.translator(console.lang(request))("csrf_failed"))
        lang = form.get("lang", "")
        response = console.redirect(request, safe_next(form.get("next")))
        if lang in i18n.CATALOGUES:
            set_language(response, request, lang)
        return response

    # ---------------------------------------------------------------- the queue

    @r.get("/")
    async def queue(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        filters = _queue_filters(request.query_params)
        try:
            reply, known = await gather(
                [
                    services.get(token, "sla-monitor", "/v1/me/leads", limit=200, **filters),
                    services.names(token),
                ]
            )
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        if not reply.ok:
            return console.error(request, me, reply.status, reply.detail)
        items = [views.queue_item(i) for i in reply.data]
        title = "queue_rep" if me.role == "rep" else "queue_manager" if me.role == "manager" else "queue_all"
        return console.render(
            request,
            "queue.html",
            me,
            title=title,
            items=items,
            reps=known.people,
            filters=filters,
            live_query=_urlencode({"stream": "queue", **filters}),
        )

    # ---------------------------------------------------------------- a lead

    async def lead_context(token: str, me: Me, lead_id: str) -> dict[str, Any] | Reply:
        assignment, score, sla, feedback, forms, definition, known = await gather(
            [
                services.get(token, "routing", f"/v1/leads/{lead_id}/assignment"),
                services.get(token, "scoring", f"/v1/leads/{lead_id}/score"),
                services.get(token, "sla-monitor", f"/v1/leads/{lead_id}/sla"),
                services.get(token, "feedback", f"/v1/leads/{lead_id}/feedback"),
                services.get(token, "intake", "/v1/forms"),
                services.get(token, "scoring", "/v1/lead-definition"),
                services.names(token),
            ]
        )
        if assignment.status == 403 or score.status == 403:
            return assignment if assignment.status == 403 else score
        if not assignment.ok and not score.ok:
            return assignment
        a = assignment.data if assignment.ok else None
        handoff = (a or {}).get("handoff") or {}
        activities = handoff.get("activities") or []
        form_names = {f["id"]: f.get("name") or f["id"] for f in forms.data} if forms.ok else {}
        handraiser_forms = definition.data.get("handraiser_forms", []) if definition.ok else []
        fb = feedback.data if feedback.ok else None
        cycle = a.get("cycle") if a else None
        hform = views.handraiser_form(activities, handraiser_forms)
        closed = views.closed_by(fb, cycle) or (a.get("release_reason") if a and a.get("status") != "active" else None)
        return {
            "lead_id": lead_id,
            "assignment": a,
            "contact": handoff.get("contact") or {},
            "handoff": handoff,
            "score": score.data if score.ok else None,
            "reasons": (score.data.get("reasons") if score.ok else None) or handoff.get("reasons") or [],
            "clocks": views.clocks_now(sla.data if sla.ok else None, fb, cycle),
            "timeline": views.timeline(activities, fb, known.people, form_names),
            "handraiser_form": form_names.get(hform, hform) if hform else None,
            "rep_name": known.people.get((a or {}).get("rep_id", ""), (a or {}).get("rep_id")),
            "territory_name": known.territories.get((a or {}).get("territory", ""), (a or {}).get("territory")),
            "can_act": bool(a and not closed),
            "closed": closed,
            "channels": views.CHANNELS,
            "dispositions": views.DISPOSITIONS,
            "idempotency": str(uuid.uuid4()),
            "flash": None,
            "problem": None,
            "oob": False,
        }

    def lead_problem(request: Request, me: Me, reply: Reply) -> Response:
        t = i18n.translator(console.lang(request))
        if reply.status == 403:
            return console.error(request, me, 403, t("not_yours"))
        if reply.status == 404:
            return console.error(request, me, 404, t("lead_not_found"))
        return console.error(request, me, reply.status, reply.detail)

    @r.get("/leads/{lead_id}")
    async def lead(request: Request, lead_id: str) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        if not _is_uuid(lead_id):
            return console.error(request, me, 404, i18n.translator(console.lang(request))("lead_not_found"))
        try:
            ctx = await lead_context(token, me, lead_id)
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        if isinstance(ctx, Reply):
            return lead_problem(request, me, ctx)
        done = request.query_params.get("done", "")
        t = i18n.translator(console.lang(request))
        if done == "touch":
            ctx["flash"] = t("touch_logged")
        elif done in views.DISPOSITIONS:
            ctx["flash"] = t("disposition_saved", d=t("dispo_" + done))
        return console.render(request, "lead.html", me, **ctx)

    async def after_action(
        request: Request, token: str, me: Me, lead_id: str, reply: Reply, flash: str, done: str
    ) -> Response:
        """The work panel again (htmx) or the lead page (a plain form post), with the outcome."""
        t = i18n.translator(console.lang(request))
        problem = None if reply.ok else (t("not_yours") if reply.status == 403 else reply.detail)
        if not request.headers.get("hx-request"):
            if problem is None:
                return console.redirect(request, f"/leads/{lead_id}?done={done}")
            return console.error(request, me, reply.status, problem)
        ctx = await lead_context(token, me, lead_id)
        if isinstance(ctx, Reply):
            return lead_problem(request, me, ctx)
        ctx.update(flash=flash if problem is None else None, problem=problem)
        status = 200 if problem is None else (reply.status if reply.status in (403, 404, 422) else 400)
        # htmx swaps only 2xx answers by default; the panel shows the problem either way.
        # The work panel, and the timeline out of band (htmx swaps both).
        response = console.render(request, "_after_action.html", me, **ctx)
        response.headers["X-Leadrelay-Status"] = str(status)
        return response

    @r.post("/leads/{lead_id}/touches")
    async def touch(request: Request, lead_id: str) -> Response:
        action = await console.signed_in_form(request)
        if isinstance(action, Response):
            return action
        token, me, form = action
        t = i18n.translator(console.lang(request))
        if not _is_uuid(lead_id):
            return console.error(request, me, 404, t("lead_not_found"))
        body: dict[str, Any] = {"channel": form.get("channel", "")}
        if form.get("note", "").strip():
            body["note"] = form["note"].strip()
        try:
            reply = await services.call(
                token,
                "POST",
                "feedback",
                f"/v1/leads/{lead_id}/touches",
                json=body,
                **_idempotency(form),
            )
            return await after_action(request, token, me, lead_id, reply, t("touch_logged"), "touch")
        except Unavailable as exc:
            return console.unavailable(request, me, exc)

    @r.post("/leads/{lead_id}/dispositions")
    async def disposition(request: Request, lead_id: str) -> Response:
        action = await console.signed_in_form(request)
        if isinstance(action, Response):
            return action
        token, me, form = action
        t = i18n.translator(console.lang(request))
        if not _is_uuid(lead_id):
            return console.error(request, me, 404, t("lead_not_found"))
        verdict = form.get("disposition", "")
        reason = form.get("reason", "").strip()
        try:
            if verdict in views.REASON_REQUIRED and not reason:
                # Said here in the person's language; the service would refuse it too (422).
                reply = Reply(422, {"detail": t("reason_required")})
            else:
                body: dict[str, Any] = {"disposition": verdict}
                if reason:
                    body["reason"] = reason
                reply = await services.call(
                    token,
                    "POST",
                    "feedback",
                    f"/v1/leads/{lead_id}/dispositions",
                    json=body,
                    **_idempotency(form),
                )
            d = t("dispo_" + verdict) if verdict in views.DISPOSITIONS else verdict
            return await after_action(request, token, me, lead_id, reply, t("disposition_saved", d=d), verdict)
        except Unavailable as exc:
            return console.unavailable(request, me, exc)

    # ---------------------------------------------------------------- alerts

    @r.get("/alerts")
    async def alerts(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        try:
            reply, known = await gather(
                [services.get(token, "sla-monitor", "/v1/alerts", limit=100), services.names(token)]
            )
            if not reply.ok:
                return console.error(request, me, reply.status, reply.detail)
            names: dict[str, dict[str, Any]] = {}
            await services.lead_names(token, (a["lead_id"] for a in reply.data), names)
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        newest = reply.data[0]["raised_at"] if reply.data else ""
        return console.render(
            request,
            "alerts.html",
            me,
            alerts=reply.data,
            names=names,
            reps=known.people,
            territory_names=known.territories,
            live_query=_urlencode({"stream": "alerts", "since": newest}),
        )

    # ---------------------------------------------------------------- team

    @r.get("/team")
    async def team(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        try:
            reply = await services.get(token, "routing", "/v1/territories")
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        if not reply.ok:
            return console.error(request, me, reply.status, reply.detail)
        t = i18n.translator(console.lang(request))
        flash = None
        saved = request.query_params.get("saved")
        for territory in reply.data:
            for rep in territory["reps"]:
                if rep["id"] == saved:
                    flash = t("availability_saved", name=rep["name"], status=t("avail_" + rep["status"]))
        problem = request.query_params.get("problem")
        return console.render(
            request,
            "team.html",
            me,
            territories=reply.data,
            may_set=lambda tid: me.sees_everything or (me.role == "manager" and tid in me.territories),
            statuses=views.AVAILABILITY,
            durations=list(views.DURATIONS),
            flash=flash,
            problem=problem[:300] if problem else None,
        )

    @r.post("/team/reps/{rep_id}/availability")
    async def availability(request: Request, rep_id: str) -> Response:
        action = await console.signed_in_form(request)
        if isinstance(action, Response):
            return action
        token, me, form = action
        status = form.get("status", "")
        span = views.DURATIONS.get(form.get("duration", "open"), None)
        body: dict[str, Any] = {"status": status}
        if span is not None:
            body["until"] = views.iso(_now() + span)
        try:
            reply = await services.call(token, "PUT", "routing", f"/v1/reps/{_quote(rep_id)}/availability", json=body)
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        if reply.ok:
            return console.redirect(request, f"/team?saved={_quote(rep_id)}#rep-{_quote(rep_id)}")
        if reply.status in (403, 404, 422):
            return console.redirect(request, "/team?" + _urlencode({"problem": reply.detail}))
        return console.error(request, me, reply.status, reply.detail)

    # ---------------------------------------------------------------- funnel

    @r.get("/funnel")
    async def funnel(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        period = request.query_params.get("period", "30")
        period = period if period in views.PERIODS else "30"
        territory = request.query_params.get("territory") or None
        start = views.since(period, _now())
        params = {"since": views.iso(start) if start else None, "territory": territory}
        try:
            f, s, policy, territories = await gather(
                [
                    services.get(token, "feedback", "/v1/metrics/funnel", **params),
                    services.get(token, "sla-monitor", "/v1/metrics/sla", **params),
                    services.get(token, "sla-monitor", "/v1/sla-policy"),
                    services.get(token, "routing", "/v1/territories"),
                ]
            )
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        for reply in (f, s):
            if not reply.ok:
                return console.error(request, me, reply.status, reply.detail)
        lang = console.lang(request)
        t = i18n.translator(lang)
        m = f.data
        handed = m["handed_to_sales"]
        accepted = m["dispositions"].get("accepted", 0)
        decided = sum(m["dispositions"].values())
        p50, p95 = m.get("median_seconds_to_first_touch"), m.get("p95_seconds_to_first_touch")
        targets = policy.data if policy.ok else {}
        slowest_target = max((v.get("first_touch_seconds", 0) for v in targets.values()), default=0)
        return console.render(
            request,
            "funnel.html",
            me,
            period=period,
            periods=list(views.PERIODS),
            territory=territory,
            territories=territories.data if territories.ok else [],
            metrics=m,
            funnel_bars=views.bars([(t("handed"), handed), (t("touched"), m["touched"]), (t("accepted"), accepted)]),
            speed_bars=views.bars([(t("p50"), p50), (t("p95"), p95)], scale=max(p50 or 0, p95 or 0, 1)),
            speed_text={"p50": i18n.duration(p50, lang), "p95": i18n.duration(p95, lang)},
            targets={k: i18n.duration(v.get("first_touch_seconds"), lang) for k, v in targets.items()},
            slowest_target=slowest_target,
            dispositions=views.bars(
                [(t("disp_" + d), m["dispositions"].get(d, 0)) for d in views.DISPOSITIONS]
                + [(t("awaiting"), m["awaiting_disposition"])]
            ),
            acceptance=views.donut(m.get("acceptance_rate")),
            accepted=accepted,
            decided=decided,
            attainment={
                name: {**v, "donut": views.donut(v.get("attainment")), "decided": v["met"] + v["breached"]}
                for name, v in s.data.items()
            },
        )

    # ---------------------------------------------------------------- review board

    @r.get("/review")
    async def review(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        period = request.query_params.get("period", "7")
        period = period if period in views.PERIODS else "7"
        start = views.since(period, _now())
        try:
            reply, known = await gather(
                [
                    services.get(
                        token, "feedback", "/v1/review-board", limit=200, since=views.iso(start) if start else None
                    ),
                    services.names(token),
                ]
            )
            if not reply.ok:
                return console.error(request, me, reply.status, reply.detail)
            names: dict[str, dict[str, Any]] = {}
            await services.lead_names(token, (i["lead_id"] for i in reply.data[:100]), names)
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        return console.render(
            request,
            "review.html",
            me,
            period=period,
            periods=list(views.PERIODS),
            board=reply.data,
            agenda=views.agenda(reply.data),
            names=names,
            reps=known.people,
        )

    # ---------------------------------------------------------------- lead definition and hot list

    @r.get("/definition")
    async def definition(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        try:
            d, policy, territories, forms = await gather(
                [
                    services.get(token, "scoring", "/v1/lead-definition"),
                    services.get(token, "sla-monitor", "/v1/sla-policy"),
                    services.get(token, "routing", "/v1/territories"),
                    services.get(token, "intake", "/v1/forms"),
                ]
            )
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        if not d.ok:
            return console.error(request, me, d.status, d.detail)
        form_names = {f["id"]: f.get("name") or f["id"] for f in forms.data} if forms.ok else {}
        # What to paste into the website for each form (intake renders it; the snippets hold no secret).
        try:
            embeds = await gather(
                [services.get(token, "intake", f"/v1/forms/{_quote(fid)}/embed") for fid in form_names]
            )
        except Unavailable:
            embeds = []
        return console.render(
            request,
            "definition.html",
            me,
            definition=d.data["lead_definition"],
            handraiser_forms=[form_names.get(f, f) for f in d.data.get("handraiser_forms", [])],
            embeds=[
                views.public_embed(e.data, services.bases["intake"], str(request.base_url))
                | {"name": form_names.get(e.data["form_id"], e.data["form_id"])}
                for e in embeds
                if e.ok
            ],
            policy=policy.data if policy.ok else {},
            territories=territories.data if territories.ok else [],
            describe=views.describe_condition,
        )

    @r.get("/hot")
    async def hot(request: Request) -> Response:
        who = await console.signed_in(request)
        if isinstance(who, Response):
            return who
        token, me = who
        status = request.query_params.get("status") or None
        try:
            reply = await services.get(token, "scoring", "/v1/leads", status=status, limit=100)
            if not reply.ok:
                return console.error(request, me, reply.status, reply.detail)
            names: dict[str, dict[str, Any]] = {}
            handed = [x["lead_id"] for x in reply.data if x["status"] not in ("lead", "disqualified")]
            await services.lead_names(token, handed[:50], names)
        except Unavailable as exc:
            return console.unavailable(request, me, exc)
        return console.render(
            request,
            "hot.html",
            me,
            leads=reply.data,
            names=names,
            current=status,
            statuses=["mql", "handraiser", "accepted", "lead", "recycled", "junk", "disqualified"],
        )

    # ---------------------------------------------------------------- live updates

    @r.get("/live")
    async def live_updates(request: Request) -> Response:
        token = console.token(request)
        me = await services.me(token) if token else None
        if token is None or me is None:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        stream = request.query_params.get("stream", "queue")
        lang = console.lang(request)
        if stream == "alerts":
            events = live.alerts(console, token, lang, request.query_params.get("since", ""))
        else:
            events = live.queue(console, token, lang, _queue_filters(request.query_params))
        response = StreamingResponse(live.until_gone(console, events), media_type="text/event-stream")
        secure_headers(response.headers)
        response.headers["X-Accel-Buffering"] = "no"  # no proxy buffering of the stream
        return response

    return r


def _queue_filters(params: Mapping[str, str]) -> dict[str, str]:
    out = {}
    if params.get("status") in ("new", "touched", "accepted"):
        out["status"] = params["status"]
    if params.get("sla") in ("breached", "running"):
        out["sla"] = params["sla"]
    if params.get("territory"):
        out["territory"] = params["territory"][:100]
    return out


def _urlencode(values: Mapping[str, Any]) -> str:
    return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _idempotency(form: Mapping[str, str]) -> dict[str, Any]:
    """A form rendered once is recorded once, however often it is submitted (a double click)."""
    key = form.get("idempotency", "")
    return {"headers": {"Idempotency-Key": key}} if _is_uuid(key) else {}


# -------------------------------------------------------------------- the two ways to run it


def secret_key(settings: Settings, generate: bool) -> str:
    """The key that signs CSRF tokens: LEADRELAY_CONSOLE_SECRET_KEY, or (embedded) one generated
    once into the data folder (mode 0600)."""
    if settings.console_secret_key is not None:
        value = settings.console_secret_key.get_secret_value()
        problem = key_problem(value)
        if problem:
            raise AuthConfigError(f"LEADRELAY_CONSOLE_SECRET_KEY is {problem}")
        return value
    if not generate:
        raise AuthConfigError(
            "LEADRELAY_CONSOLE_SECRET_KEY is not set: generate one, e.g."
            " python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    key, _ = load_or_create_key(settings.data_dir / SECRET_FILE)
    return key


class Plugin:
    """What the ``leadrelay.console`` entry point gives the ``leadrelay`` command."""

    @staticmethod
    def embedded(app: FastAPI, settings: Settings) -> Console:
        """Serve the console at / on the app of the embedded services, calling that app over ASGI."""
        console = Console(
            services=Services.in_process(app),
            csrf=Csrf(secret_key(settings, generate=True)),
            poll_seconds=settings.console_poll_seconds,
        )
        app.include_router(router(console))
        app.mount("/static", Static(directory=STATIC), name="console-static")
        app.state.console = console
        return console

    @staticmethod
    def standalone(settings: Settings) -> FastAPI:
        """The console as its own process, reaching each service at its base URL."""
        console = Console(
            services=Services.over_http(settings.service_urls()),
            csrf=Csrf(secret_key(settings, generate=False)),
            poll_seconds=settings.console_poll_seconds,
        )

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await console.services.aclose()

        app = FastAPI(
            title="Leadrelay console",
            version=__version__,
            lifespan=lifespan,
            openapi_url=None,
            docs_url=None,
            redoc_url=None,
        )
        app.state.console = console
        app.include_router(router(console))
        app.mount("/static", Static(directory=STATIC), name="console-static")

        @app.get("/livez", include_in_schema=False)
        async def livez() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/readyz", include_in_schema=False)
        async def readyz() -> JSONResponse:
            checks = await console.services.ready()
            ok = all(v == "ok" for v in checks.values())
            return JSONResponse(
                {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
            )

        return app


PLUGIN = Plugin()
