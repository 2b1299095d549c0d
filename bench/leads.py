"""Synthetic but realistic leads, deterministic for a seed.

Names, companies and titles come from small per-language lists (Swedish for the
Nordics, German for DACH, Dutch for Benelux, Chinese for Greater China, English
elsewhere); phone numbers are generated for the lead's country and checked with
``phonenumbers``; emails are unique per lead. Four kinds of lead, chosen so the
example rules (config/example.yaml, threshold 60) give a known outcome:

- ``handraiser``: the demo-request form; qualifies at once.
- ``mql_form``: whitepaper, decision-maker title (25), 50-5000 employees (20), target
  industry (10), phone (5), plus the form itself (5): 65, an MQL on the form.
- ``mql_events``: the same without a target industry (55); a later page view of the
  pricing page (15 + 1) makes it an MQL: the qualifying request is the behaviour event.
- ``nurture``: newsletter, little fit (5): never qualifies, never assigned.

Some leads send further behaviour events that do not change the outcome.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# ------------------------------------------------------------------ word lists

SV_FIRST = [
    "Anna",
    "Erik",
    "Lars",
    "Karin",
    "Johan",
    "Maria",
    "Anders",
    "Eva",
    "Nils",
    "Ingrid",
    "Oskar",
    "Elsa",
    "Björn",
    "Åsa",
]
SV_LAST = [
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Lindqvist",
    "Berg",
    "Holm",
    "Sjöberg",
    "Åkesson",
    "Lundgren",
    "Ström",
]
DE_FIRST = [
    "Jonas",
    "Lena",
    "Lukas",
    "Sophie",
    "Maximilian",
    "Hannah",
    "Felix",
    "Julia",
    "Tobias",
    "Katrin",
    "Jürgen",
    "Anke",
]
DE_LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Becker",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Huber",
    "Wagner",
    "Groß",
]
NL_FIRST = ["Jan", "Sanne", "Pieter", "Femke", "Daan", "Lotte", "Bram", "Eva", "Thijs", "Anouk", "Joris", "Maartje"]
NL_LAST = [
    "de Vries",
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "van Dijk",
    "Janssens",
    "Peeters",
    "van den Berg",
]
# Chinese names with their pinyin, which the email address uses.
ZH_FIRST = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("秀英", "xiuying"),
    ("静", "jing"),
    ("磊", "lei"),
    ("敏", "min"),
    ("强", "qiang"),
    ("丽", "li"),
    ("军", "jun"),
    ("婷", "ting"),
]
ZH_LAST = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
]
EN_FIRST = [
    "Olivia",
    "James",
    "Emma",
    "William",
    "Sophia",
    "Oliver",
    "Amelia",
    "Harry",
    "Charlotte",
    "Jack",
    "Priya",
    "Lucas",
]
EN_LAST = [
    "Smith",
    "Brown",
    "Taylor",
    "Wilson",
    "Johnson",
    "Davies",
    "Evans",
    "Thomas",
    "Walker",
    "Roberts",
    "Patel",
    "Garcia",
]

# (company name, domain label): the domain gets the country's TLD.
COMPANIES = {
    "sv": [
        ("Nordberg Teknik AB", "nordbergteknik"),
        ("Sjöström Logistik AB", "sjostromlogistik"),
        ("Fjällkraft Energi AB", "fjallkraft"),
        ("Älvsborg Mekaniska AB", "alvsborgmek"),
        ("Kvarnholmen Data AB", "kvarnholmendata"),
        ("Vättern Finans AB", "vatternfinans"),
    ],
    "de": [
        ("Rheinwerk Maschinenbau GmbH", "rheinwerk-mb"),
        ("Alpenlicht Software AG", "alpenlicht"),
        ("Hafenstadt Logistik GmbH & Co. KG", "hafenstadt-logistik"),
        ("Schwarzwald Präzision GmbH", "sw-praezision"),
        ("Donau Finanzdienste AG", "donau-finanz"),
        ("Bergmann IT-Services GmbH", "bergmann-it"),
    ],
    "nl": [
        ("Bakker Logistiek B.V.", "bakkerlogistiek"),
        ("Polderdata B.V.", "polderdata"),
        ("Van Houten Techniek N.V.", "vanhoutentechniek"),
        ("Grachtengordel Software B.V.", "grachtsoftware"),
        ("Scheldebouw N.V.", "scheldebouw"),
        ("Deltafinance B.V.", "deltafinance"),
    ],
    "zh": [
        ("深圳华信科技有限公司", "huaxin-tech"),
        ("上海东方物流有限公司", "dongfang-logistics"),
        ("北京云海软件有限公司", "yunhai-soft"),
        ("广州恒达制造有限公司", "hengda-mfg"),
        ("台北明德資訊股份有限公司", "mingde-info"),
        ("香港匯豐達貿易有限公司", "huifengda"),
    ],
    "en": [
        ("Brightwater Analytics Ltd", "brightwater-analytics"),
        ("Summit Logistics Inc.", "summitlogistics"),
        ("Oakridge Manufacturing LLC", "oakridgemfg"),
        ("Harbour Financial plc", "harbourfinancial"),
        ("Bluepeak Software Inc.", "bluepeaksoftware"),
        ("Redstone IT Services Ltd", "redstone-it"),
    ],
}
# Decision-maker titles (the example rules give 25 points) and titles with no fit points.
DM_TITLES = {
    "sv": ["VD", "CTO", "Vice VD", "CFO", "IT-director"],
    "de": ["Geschäftsführer", "CTO", "Head of Sales", "Director Operations", "CFO"],
    "nl": ["Directeur", "Commercieel directeur", "CTO", "Head of IT", "CEO"],
    "zh": ["销售总监", "总经理", "技术总监", "董事", "CTO"],
    "en": ["VP Sales", "Chief Revenue Officer", "Director of Operations", "Head of IT", "Founder"],
}
LOW_TITLES = {
    "sv": ["Student", "Ekonomiassistent", "Säljare"],
    "de": ["Praktikant", "Werkstudent", "Sachbearbeiterin"],
    "nl": ["Stagiair", "Student", "Medewerker binnendienst"],
    "zh": ["实习生", "助理", "销售代表"],
    "en": ["Intern", "Student", "Assistant"],
}
TARGET_INDUSTRIES = ["software", "saas", "it services", "manufacturing", "financial services", "logistics"]
OTHER_INDUSTRIES = ["retail", "hospitality", "education", "healthcare", "agriculture"]

# Country weights (per 100) by territory, with the language used and the domain TLD.
COUNTRIES: list[tuple[str, int, str, str]] = [
    ("SE", 12, "sv", "se"),
    ("NO", 5, "sv", "no"),
    ("DK", 4, "sv", "dk"),
    ("FI", 3, "sv", "fi"),
    ("IS", 1, "sv", "is"),
    ("DE", 12, "de", "de"),
    ("AT", 4, "de", "at"),
    ("CH", 4, "de", "ch"),
    ("NL", 9, "nl", "nl"),
    ("BE", 5, "nl", "be"),
    ("LU", 1, "nl", "lu"),
    ("CN", 9, "zh", "cn"),
    ("HK", 3, "zh", "com.hk"),
    ("TW", 3, "zh", "com.tw"),
    ("US", 8, "en", "com"),
    ("GB", 7, "en", "co.uk"),
    ("FR", 3, "en", "fr"),
    ("ES", 2, "en", "es"),
    ("IN", 2, "en", "in"),
    ("AU", 2, "en", "com.au"),
    ("BR", 1, "en", "com.br"),
]
TERRITORY = {
    **dict.fromkeys(["SE", "NO", "DK", "FI", "IS"], "nordics"),
    **dict.fromkeys(["DE", "AT", "CH"], "dach"),
    **dict.fromkeys(["NL", "BE", "LU"], "benelux"),
    **dict.fromkeys(["CN", "HK", "TW"], "greater-china"),
}
# Named accounts of the example rules: a few leads come from them (routed to the owner).
ACCOUNT_CONTACTS = [
    ("SE", "Nordvik Logistics AB", "nordvik.se"),
    ("DE", "Hanse Maschinenbau GmbH", "hanse-maschinen.de"),
]

KINDS = [("handraiser", 20), ("mql_form", 20), ("mql_events", 15), ("nurture", 45)]
QUALIFYING_KINDS = {"handraiser", "mql_form", "mql_events"}
SITE = "https://www.leadrelay-customer.com"


def ascii_slug(text: str) -> str:
    text = text.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("Ø", "O")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in text.lower() if c.isalnum())


_PHONE_CACHE: dict[str, tuple[int, str]] = {}


def phone_for(country: str, rng: random.Random) -> str:
    """A valid mobile (or fixed line) number of ``country``, in international format."""
    if country not in _PHONE_CACHE:
        ex = phonenumbers.example_number_for_type(country, PhoneNumberType.MOBILE) or phonenumbers.example_number(
            country
        )
        if ex is None:
            raise ValueError(f"no example phone number for {country}")
        _PHONE_CACHE[country] = (ex.country_code, phonenumbers.national_significant_number(ex))
    cc, nsn = _PHONE_CACHE[country]
    keep = min(3, len(nsn) - 4)
    for _ in range(100):
        digits = nsn[:keep] + "".join(str(rng.randrange(10)) for _ in nsn[keep:])
        number = phonenumbers.parse(f"+{cc}{digits}")
        if phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == country:
            return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(phonenumbers.parse(f"+{cc}{nsn}"), PhoneNumberFormat.INTERNATIONAL)


@dataclass
class Lead:
    index: int
    kind: str
    email: str
    country: str
    territory: str
    form_id: str
    fields: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    qualifying_step: int | None = None  # 0: the form; 1..: the n-th behaviour event

    @property
    def qualifies(self) -> bool:
        return self.qualifying_step is not None


@dataclass
class Request:
    """One HTTP request of the load, at a fixed time after the start (open loop)."""

    at: float
    lead: int
    step: int  # 0: the form submission, 1..: behaviour events
    path: str
    body: dict[str, Any]
    qualifying: bool


def _weighted(rng: random.Random, items: list[tuple[Any, int]]) -> Any:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def make_lead(index: int, rng: random.Random, tag: str) -> Lead:
    country, _, lang, tld = rng.choices(COUNTRIES, weights=[c[1] for c in COUNTRIES])[0]
    kind = _weighted(rng, KINDS)
    if lang == "zh":
        (last, last_py), (first, first_py) = rng.choice(ZH_LAST), rng.choice(ZH_FIRST)
        local = f"{first_py}.{last_py}"
    else:
        first = rng.choice({"sv": SV_FIRST, "de": DE_FIRST, "nl": NL_FIRST, "en": EN_FIRST}[lang])
        last = rng.choice({"sv": SV_LAST, "de": DE_LAST, "nl": NL_LAST, "en": EN_LAST}[lang])
        local = f"{ascii_slug(first)}.{ascii_slug(last)}"
    company, label = rng.choice(COMPANIES[lang])
    domain = f"{label}.{tld}"
    if kind != "nurture" and rng.random() < 0.03:
        country_acc, company, domain = rng.choice(ACCOUNT_CONTACTS)
        if lang != "zh":
            country = country_acc
    # Names have no digits, and the tag has none either: the index makes the address unique.
    email = f"{local}.{tag}{index}@{domain}"
    fields: dict[str, Any] = {"email": email, "first_name": first, "last_name": last, "company": company}
    fields["country"] = country if rng.random() < 0.8 else _english_name(country)
    events: list[dict[str, Any]] = []
    qualifying: int | None = None
    if kind == "handraiser":
        form_id = "demo-request" if rng.random() < 0.8 else "contact-sales"
        fields["job_title"] = rng.choice(DM_TITLES[lang] + LOW_TITLES[lang])
        fields["phone"] = phone_for(country, rng)
        fields["company_size"] = rng.choice([12, 80, 250, "51-200", 1200, "1000+", 7000])
        qualifying = 0
        if rng.random() < 0.2:
            events.append(_page_view(email, "/customers/case-studies"))
    elif kind in ("mql_form", "mql_events"):
        form_id = "whitepaper"
        fields["job_title"] = rng.choice(DM_TITLES[lang])
        fields["phone"] = phone_for(country, rng)
        fields["company_size"] = rng.choice([55, 120, 250, 480, 900, 1500, 3200, 4800, "201-500"])
        fields["whitepaper"] = rng.choice(["lead-routing-guide-2026", "sla-playbook"])
        if kind == "mql_form":
            fields["industry"] = rng.choice(TARGET_INDUSTRIES)
            qualifying = 0
            if rng.random() < 0.3:
                events.append(_page_view(email, "/customers"))
        else:
            fields["industry"] = rng.choice(OTHER_INDUSTRIES)
            events.append(_page_view(email, "/pricing"))
            qualifying = 1
    else:
        form_id = "newsletter"
        if rng.random() < 0.5:
            fields["job_title"] = rng.choice(LOW_TITLES[lang])
        if rng.random() < 0.5:
            fields["company_size"] = rng.choice([1, 3, 8, 15, "1-10"])
        if rng.random() < 0.5:
            fields["industry"] = rng.choice(OTHER_INDUSTRIES)
        if rng.random() < 0.3:
            events.append({"type": "email_opened", "email": email, "properties": {"campaign": "nurture-1"}})
    if rng.random() < 0.3:
        fields["utm_source"] = rng.choice(["linkedin", "google", "newsletter", "partner"])
    fields["page_url"] = f"{SITE}/{form_id}"
    return Lead(
        index=index,
        kind=kind,
        email=email.lower(),
        country=country,
        territory=TERRITORY.get(country, "rest-of-world"),
        form_id=form_id,
        fields=fields,
        events=events,
        qualifying_step=qualifying,
    )


def _page_view(email: str, path: str) -> dict[str, Any]:
    return {"type": "page_viewed", "email": email, "url": SITE + path}


_NAMES = {"SE": "Sweden", "NO": "Norway", "DK": "Denmark", "FI": "Finland", "IS": "Iceland", "DE": "Germany"}
_NAMES |= {"AT": "Austria", "CH": "Switzerland", "NL": "Netherlands", "BE": "Belgium", "LU": "Luxembourg"}
_NAMES |= {"CN": "China", "HK": "HK", "TW": "TW", "US": "United States", "GB": "United Kingdom"}
_NAMES |= {"FR": "France", "ES": "Spain", "IN": "India", "AU": "Australia", "BR": "Brazil"}


def _english_name(country: str) -> str:
    return _NAMES.get(country, country)


def make_leads(n: int, seed: int, tag: str) -> list[Lead]:
    """``n`` leads; ``tag`` (letters only) keeps the emails of different runs apart."""
    if not tag.isalpha():
        raise ValueError("tag must be letters only")
    rng = random.Random(f"{seed}:{tag}")
    return [make_lead(i, rng, tag) for i in range(n)]


def schedule(leads: list[Lead], rate: float, seed: int, events: bool = True) -> list[Request]:
    """Form submissions at ``rate`` per second, evenly spaced; each behaviour event 0.5-2 s after its form."""
    rng = random.Random(seed)
    out: list[Request] = []
    for lead in leads:
        t = lead.index / rate
        out.append(
            Request(t, lead.index, 0, f"/v1/forms/{lead.form_id}/submissions", lead.fields, lead.qualifying_step == 0)
        )
        if events:
            for step, ev in enumerate(lead.events, start=1):
                t += rng.uniform(0.5, 2.0)
                out.append(Request(t, lead.index, step, "/v1/events", ev, lead.qualifying_step == step))
    out.sort(key=lambda r: r.at)
    return out
