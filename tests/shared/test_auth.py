"""leadrelay.auth: signing and verifying tokens, key rotation, API keys, keys kept on disk, and
who may see and act on which lead."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from leadrelay import auth
from leadrelay.auth import (
    ApiKeys,
    AuthConfigError,
    Authenticator,
    InvalidCredential,
    Principal,
    Tokens,
    embedded_source_keys,
    generate_key,
    key_problem,
    load_or_create_key,
    parse_ttl,
    source_keys_from_environment,
    split_keys,
)
from leadrelay.rules import Person, Role
from leadrelay.settings import Settings
from tests.harness import example_rules

KARIN = Person(id="karin.ek", name="Karin Ek", role=Role.MANAGER, territories=["nordics", "benelux"])


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("short", "shorter than 32"),
        ("change-me-change-me-change-me-change-me", "placeholder"),
        ("please-replace-this-with-a-real-signing-key", "placeholder"),
        ("your-signing-key-goes-here-0123456789abcdef", "placeholder"),
        ("${LEADRELAY_AUTH_SIGNING_KEY_FROM_SOMEWHERE_ELSE}", "placeholder"),
        ("supersecretsupersecretsupersecret123", "placeholder"),
        ("x" * 40, "placeholder"),
        ("ab" * 30, "distinct"),
    ],
)
def test_unusable_keys_are_named(key: str, problem: str) -> None:
    reason = key_problem(key)
    assert reason is not None and problem in reason
    with pytest.raises(AuthConfigError, match="LEADRELAY_AUTH_SIGNING_KEY"):
        Tokens(key)


def test_generated_keys_are_usable_and_distinct() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(key_problem(k) is None and len(k) >= 64 for k in keys)


def test_the_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / auth.KEY_FILE
    key, new = load_or_create_key(path)
    assert new and key_problem(key) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == (key, False)
    path.write_text("too-short\n")
    with pytest.raises(AuthConfigError, match="delete the file"):
        load_or_create_key(path)


# ---------------------------------------------------------------- tokens


def test_a_token_carries_the_person_role_expiry_and_an_id() -> None:
    key = generate_key()
    tokens = Tokens(key)
    now = datetime.now(UTC).replace(microsecond=0)
    token = tokens.issue(KARIN, timedelta(hours=2), now)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == tokens.current.kid
    claims = tokens.verify(token)
    assert claims["sub"] == "karin.ek" and claims["role"] == "manager"
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] - claims["iat"] == 7200
    assert claims["iss"] == claims["aud"] == "leadrelay"
    assert tokens.verify(tokens.issue(KARIN))["jti"] != claims["jti"]
    assert key not in token


def test_expired_tokens_are_refused_after_a_short_leeway() -> None:
    tokens = Tokens(generate_key())
    just = tokens.issue(KARIN, timedelta(hours=1), datetime.now(UTC) - timedelta(minutes=60, seconds=10))
    assert tokens.verify(just)["sub"] == "karin.ek"  # 10 s past: within the 30 s leeway
    old = tokens.issue(KARIN, timedelta(hours=1), datetime.now(UTC) - timedelta(hours=2))
    with pytest.raises(InvalidCredential, match="expired"):
        tokens.verify(old)


def test_tokens_from_another_key_forged_tampered_or_unsigned_are_refused() -> None:
    tokens = Tokens(generate_key())
    with pytest.raises(InvalidCredential, match="key this service does not accept"):
        tokens.verify(Tokens(generate_key()).issue(KARIN))
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": "leadrelay", "aud": "leadrelay", "sub": "karin.ek", "role": "admin", "iat": now}
    claims |= {"exp": now + 60, "jti": "x"}
    forged = jwt.encode(claims, generate_key(), algorithm="HS256", headers={"kid": tokens.current.kid})
    with pytest.raises(InvalidCredential, match="signature"):
        tokens.verify(forged)
    # The payload changed after signing (a role raised from manager to admin).
    head, body, sig = tokens.issue(KARIN).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["role"] = "admin"
    with pytest.raises(InvalidCredential, match="signature"):
        tokens.verify(f"{head}.{b64(payload)}.{sig}")
    unsigned = f"{b64({'alg': 'none', 'kid': tokens.current.kid})}.{b64(claims)}."
    with pytest.raises(InvalidCredential):
        tokens.verify(unsigned)
    hs512 = jwt.encode(claims, tokens.current.secret, algorithm="HS512", headers={"kid": tokens.current.kid})
    with pytest.raises(InvalidCredential):
        tokens.verify(hs512)
    for garbage in ("", "abc", "a.b.c", "eyJ.eyJ.x"):
        with pytest.raises(InvalidCredential):
            tokens.verify(garbage)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "role", "iss", "aud"])
def test_a_token_missing_a_claim_is_refused(missing: str) -> None:
    tokens = Tokens(generate_key())
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": "leadrelay", "aud": "leadrelay", "sub": "karin.ek", "role": "manager", "iat": now}
    claims |= {"exp": now + 60, "jti": "x"}
    del claims[missing]
    token = jwt.encode(claims, tokens.current.secret, algorithm="HS256", headers={"kid": tokens.current.kid})
    with pytest.raises(InvalidCredential):
        tokens.verify(token)


def test_rotation_accepts_both_keys_until_the_old_one_is_dropped() -> None:
    old, new = generate_key(), generate_key()
    before = Tokens(old).issue(KARIN)
    rotating = Tokens(new, previous=old)
    after = rotating.issue(KARIN)
    assert jwt.get_unverified_header(after)["kid"] == Tokens(new).current.kid != Tokens(old).current.kid
    assert rotating.verify(before)["sub"] == rotating.verify(after)["sub"] == "karin.ek"
    done = Tokens(new)
    assert done.verify(after)["sub"] == "karin.ek"
    with pytest.raises(InvalidCredential, match="rotated out"):
        done.verify(before)
    with pytest.raises(AuthConfigError, match="LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY"):
        Tokens(new, previous="short")


@pytest.mark.parametrize(
    ("value", "seconds"), [("12h", 43200), ("30m", 1800), ("7d", 604800), ("PT1H", 3600), ("90", 90)]
)
def test_ttl(value: str, seconds: int) -> None:
    assert parse_ttl(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["0s", "31d", "-1h", "soon", ""])
def test_bad_ttl(value: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(value)
    with pytest.raises(ValueError):
        Tokens(generate_key()).issue(KARIN, timedelta(days=31))


# ---------------------------------------------------------------- API keys


def test_api_keys_match_their_source_and_every_key_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    crm = [generate_key(), generate_key()]  # new and old during a rotation
    tracking = [generate_key()]
    keys = ApiKeys({"crm": crm, "website-tracking": tracking})
    assert keys.match(crm[0]) == keys.match(crm[1]) == "crm"
    assert keys.match(tracking[0]) == "website-tracking"
    assert keys.match(tracking[0] + "x") is None and keys.match("") is None
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert keys.match(crm[0]) == "crm"
    assert len(calls) == 3, "a match must not stop the comparisons early"
    assert all(len(a) == len(b) == 32 for a, b in calls), "digests of equal length are compared"


def test_api_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = generate_key(), generate_key()
    assert split_keys(f" {a} , {b} ", "X") == [a, b]
    with pytest.raises(AuthConfigError, match="at most two"):
        split_keys(f"{a},{b},{generate_key()}", "LEADRELAY_API_KEY_CRM")
    with pytest.raises(AuthConfigError, match="LEADRELAY_API_KEY_CRM: a key is shorter"):
        split_keys("short", "LEADRELAY_API_KEY_CRM")
    rules = example_rules()
    for s in rules.sources:
        monkeypatch.delenv(s.key_env, raising=False)
    monkeypatch.setenv("LEADRELAY_API_KEY_CRM", f"{a},{b}")
    assert source_keys_from_environment(rules) == {"crm": [a, b]}  # the others are disabled


def test_embedded_api_keys_are_generated_once_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = example_rules()
    for s in rules.sources:
        monkeypatch.delenv(s.key_env, raising=False)
    keys, shown = embedded_source_keys(rules, tmp_path)
    assert set(keys) == set(shown) == {"website-tracking", "website", "crm", "prometheus", "list-import"}
    path = tmp_path / auth.API_KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert embedded_source_keys(rules, tmp_path) == (keys, shown)
    mine = generate_key()
    monkeypatch.setenv("LEADRELAY_API_KEY_CRM", mine)
    keys2, shown2 = embedded_source_keys(rules, tmp_path)
    assert keys2["crm"] == [mine] and "crm" not in shown2


# ---------------------------------------------------------------- authentication


def authenticator(**settings: Any) -> tuple[Authenticator, str, str]:
    key, api = generate_key(), generate_key()
    s = Settings(auth_signing_key=SecretStr(key), **settings)
    return Authenticator.from_settings(s, example_rules(), {"crm": [api]}), key, api


def test_a_token_or_an_api_key_becomes_a_principal() -> None:
    a, _, api = authenticator()
    who = a.authenticate(a.issue("karin.ek"), None)
    assert (who.kind, who.id, who.role, who.territories) == ("person", "karin.ek", "manager", {"nordics", "benelux"})
    assert who.actor.model_dump() == {"kind": "person", "id": "karin.ek", "role": "manager"}
    rep = a.authenticate(a.issue("mikko.virtanen"), None)
    assert (rep.role, rep.territories) == ("rep", {"nordics"})
    for bearer, header in ((api, None), (None, api)):
        src = a.authenticate(bearer, header)
        assert (src.kind, src.id, src.role, src.name) == ("source", "crm", "crm", "CRM")


def test_refused_credentials() -> None:
    a, _, api = authenticator()
    with pytest.raises(InvalidCredential, match="sign in"):
        a.authenticate(None, None)
    with pytest.raises(InvalidCredential, match="not both"):
        a.authenticate(a.issue("ops.desk"), api)
    with pytest.raises(InvalidCredential, match="unknown API key"):
        a.authenticate(generate_key(), None)
    with pytest.raises(InvalidCredential, match="unknown API key"):
        a.authenticate(None, a.issue("ops.desk"))  # a token is no API key
    # A person removed from the rules, or whose role changed, must sign in again.
    ghost = Person(id="gone.person", name="Gone", role=Role.OPS)
    with pytest.raises(InvalidCredential, match="not in the rules"):
        a.authenticate(a.tokens.issue(ghost), None)
    promoted = Person(id="astrid.lindqvist", name="Astrid", role=Role.MANAGER, territories=["nordics"])
    with pytest.raises(InvalidCredential, match="role has changed"):
        a.authenticate(a.tokens.issue(promoted), None)
    with pytest.raises(LookupError):
        a.issue("nobody")


def test_no_signing_key_no_authenticator() -> None:
    with pytest.raises(AuthConfigError, match="LEADRELAY_AUTH_SIGNING_KEY is not set"):
        Authenticator.from_settings(Settings(auth_signing_key=None), example_rules(), {})


# ---------------------------------------------------------------- who sees what


def person(pid: str) -> Principal:
    p = example_rules().person(pid)
    assert p is not None
    return Principal(kind="person", id=p.id, role=p.role.value, name=p.name, territories=frozenset(p.territories))


def source(role: str) -> Principal:
    return Principal(kind="source", id=role, role=role, name=role)


@pytest.mark.parametrize(
    ("who", "lead", "sees"),
    [
        (person("astrid.lindqvist"), ("astrid.lindqvist", "nordics"), True),
        (person("astrid.lindqvist"), ("mikko.virtanen", "nordics"), False),
        (person("astrid.lindqvist"), (None, None), False),
        (person("karin.ek"), ("sanne.devries", "benelux"), True),
        (person("karin.ek"), ("jonas.becker", "dach"), False),
        (person("karin.ek"), (None, None), False),
        (person("ops.desk"), (None, None), True),
        (person("rita.admin"), ("jonas.becker", "dach"), True),
        (source("crm"), ("jonas.becker", "dach"), True),
        (source("tracking"), ("jonas.becker", "dach"), False),
        (source("monitoring"), (None, None), False),
    ],
)
def test_who_sees_a_lead(who: Principal, lead: tuple[str | None, str | None], sees: bool) -> None:
    assert who.may_see(*lead) is sees


@pytest.mark.parametrize(
    ("who", "rep", "may"),
    [
        (person("astrid.lindqvist"), "astrid.lindqvist", True),
        (person("astrid.lindqvist"), "mikko.virtanen", False),
        (person("karin.ek"), "mikko.virtanen", True),
        (person("karin.ek"), "pieter.janssens", True),
        (person("karin.ek"), "jonas.becker", False),
        (person("tom.weber"), "olivia.smith", True),
        (person("ops.desk"), "olivia.smith", True),
        (person("rita.admin"), "wang.fang", True),
        (source("crm"), "wang.fang", True),
        (source("tracking"), "wang.fang", False),
    ],
)
def test_who_may_act_for_a_rep(who: Principal, rep: str, may: bool) -> None:
    assert who.may_act_for(rep, example_rules()) is may


def test_the_signing_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    monkeypatch.setenv("LEADRELAY_AUTH_SIGNING_KEY", key)
    monkeypatch.setenv("LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY", generate_key())
    settings = Settings()
    assert settings.auth_signing_key is not None and settings.auth_signing_key.get_secret_value() == key
    assert key not in repr(settings) and key not in str(settings.model_dump())
    assert os.environ["LEADRELAY_AUTH_SIGNING_KEY"] == key


def test_a_token_just_past_the_30_second_leeway_is_refused() -> None:
    """Expired 35 s ago: 5 s beyond the documented leeway (``auth.LEEWAY``, 30 s), so a leeway of a
    minute (or any over 35 s) lets it through and fails here; 20 s ago is still within it. Through
    :class:`Authenticator`, the check every service's routes run."""
    assert timedelta(seconds=30) == auth.LEEWAY
    rules = example_rules()
    person = rules.person("astrid.lindqvist")
    assert person is not None
    tokens = Tokens(generate_key())
    authenticator = Authenticator(rules, tokens, ApiKeys({}))
    ttl = timedelta(minutes=15)
    within = tokens.issue(person, ttl, datetime.now(UTC) - ttl - timedelta(seconds=20))
    assert authenticator.authenticate(within, None).id == "astrid.lindqvist"
    just_past = tokens.issue(person, ttl, datetime.now(UTC) - ttl - timedelta(seconds=35))
    with pytest.raises(InvalidCredential, match="expired"):
        authenticator.authenticate(just_past, None)
    with pytest.raises(InvalidCredential, match="expired"):
        tokens.verify(just_past)
