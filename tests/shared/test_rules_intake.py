"""The rules' intake sections: forms' consent, captcha and HubSpot address; Web-to-Lead sources."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from leadrelay.rules import RulesError, parse_rules
from tests.harness import EXAMPLE


def example(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data.update(changes)
    return data


def test_the_example_maps_hubspot_and_web_to_lead() -> None:
    rules = parse_rules(example())
    form = rules.hubspot_form("4711", "1B2C3D4E-0000-4000-8000-000000000001")  # GUIDs in any case
    assert form is not None and form.id == "demo-request"
    assert rules.hubspot_form("4712", "1b2c3d4e-0000-4000-8000-000000000001") is None
    source = rules.web_to_lead_source("00D5e000000LEAD")
    assert source is not None and source.form == "contact-sales" and source.fields["00N5e00000BUDGET"] == "budget"
    assert form.consent is not None and all(getattr(form.consent.text, lang) for lang in ("en", "sv", "de", "nl", "zh"))
    assert rules.lead_definition.duplicate_window.total_seconds() == 600


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["forms"][1].update(hubspot=d["forms"][0]["hubspot"]),
            "is mapped to several forms",
        ),
        (lambda d: d["web_to_lead"][0].update(form="nope"), "web_to_lead.0.form: unknown form 'nope'"),
        (lambda d: d["web_to_lead"].append(dict(d["web_to_lead"][0])), "oid 00D5e000000LEAD is used twice"),
        (lambda d: d["forms"][0]["consent"].update(text={"sv": "Ja"}), "consent.text.en: Field required"),
        (
            lambda d: d["forms"][0]["consent"]["text"].update(fr="Oui"),
            "consent.text.fr: Extra inputs are not permitted",
        ),
        (lambda d: d["forms"][0].update(captcha={"kind": "hcaptcha", "secret_env": "X"}), "captcha.kind"),
        (lambda d: d["lead_definition"].update(duplicate_window="soon"), "duplicate_window"),
    ],
)
def test_bad_intake_rules_are_refused_naming_the_key(change: Any, message: str) -> None:
    data = example()
    change(data)
    with pytest.raises(RulesError, match=message.replace(".", r"\.")):
        parse_rules(data)
