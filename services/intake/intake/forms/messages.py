"""What intake's forms say, in the five languages: the labels of the fields the snippet knows, the
snippet's messages (sent with ``embed.js``), what intake's own page says, and the visitor's language
from ``Accept-Language``.

Kept as they are, in one module, until intake reads its catalogues through the shared loader.
"""

from __future__ import annotations

from leadrelay.rules import LANGUAGES

# Labels of the fields the snippet knows, in the five languages.
LABELS: dict[str, dict[str, str]] = {
    "email": {
        "en": "Work email",
        "sv": "E-post (jobb)",
        "de": "Geschäftliche E-Mail",
        "nl": "Zakelijk e-mailadres",
        "zh": "工作邮箱",
    },
    "first_name": {"en": "First name", "sv": "Förnamn", "de": "Vorname", "nl": "Voornaam", "zh": "名"},
    "last_name": {"en": "Last name", "sv": "Efternamn", "de": "Nachname", "nl": "Achternaam", "zh": "姓"},
    "company": {"en": "Company", "sv": "Företag", "de": "Unternehmen", "nl": "Bedrijf", "zh": "公司"},
    "job_title": {"en": "Job title", "sv": "Titel", "de": "Position", "nl": "Functie", "zh": "职位"},
    "phone": {"en": "Phone", "sv": "Telefon", "de": "Telefon", "nl": "Telefoon", "zh": "电话"},
    "country": {"en": "Country", "sv": "Land", "de": "Land", "nl": "Land", "zh": "国家/地区"},
    "company_size": {
        "en": "Employees",
        "sv": "Antal anställda",
        "de": "Mitarbeitende",
        "nl": "Medewerkers",
        "zh": "员工人数",
    },
    "industry": {"en": "Industry", "sv": "Bransch", "de": "Branche", "nl": "Branche", "zh": "行业"},
    "website": {"en": "Website", "sv": "Webbplats", "de": "Website", "nl": "Website", "zh": "网站"},
    "message": {"en": "Message", "sv": "Meddelande", "de": "Nachricht", "nl": "Bericht", "zh": "留言"},
}
# What the snippet says, in the five languages.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "submit": "Send",
        "sending": "Sending…",
        "success": "Thank you! We will be in touch soon.",
        "required": "Please fill in this field.",
        "email": "Please enter a valid e-mail address.",
        "phone": "Please enter a valid phone number, e.g. +46 70 123 45 67.",
        "number": "Please enter a number of employees, e.g. 250 or 51-200.",
        "url": "Please enter a web address, e.g. example.com.",
        "country": "Please enter a country, e.g. Sweden or SE.",
        "consent": "Please tick this box to continue.",
        "captcha": "Please confirm that you are not a robot.",
        "error": "Sending failed. Please try again in a moment.",
    },
    "sv": {
        "submit": "Skicka",
        "sending": "Skickar…",
        "success": "Tack! Vi hör av oss snart.",
        "required": "Fyll i det här fältet.",
        "email": "Ange en giltig e-postadress.",
        "phone": "Ange ett giltigt telefonnummer, t.ex. +46 70 123 45 67.",
        "number": "Ange ett antal anställda, t.ex. 250 eller 51-200.",
        "url": "Ange en webbadress, t.ex. example.com.",
        "country": "Ange ett land, t.ex. Sverige eller SE.",
        "consent": "Kryssa i rutan för att fortsätta.",
        "captcha": "Bekräfta att du inte är en robot.",
        "error": "Det gick inte att skicka. Försök igen om en stund.",
    },
    "de": {
        "submit": "Senden",
        "sending": "Wird gesendet…",
        "success": "Vielen Dank! Wir melden uns in Kürze.",
        "required": "Bitte füllen Sie dieses Feld aus.",
        "email": "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
        "phone": "Bitte geben Sie eine gültige Telefonnummer ein, z. B. +49 30 1234567.",
        "number": "Bitte geben Sie eine Anzahl an, z. B. 250 oder 51-200.",
        "url": "Bitte geben Sie eine Webadresse ein, z. B. example.com.",
        "country": "Bitte geben Sie ein Land an, z. B. Deutschland oder DE.",
        "consent": "Bitte setzen Sie das Häkchen, um fortzufahren.",
        "captcha": "Bitte bestätigen Sie, dass Sie kein Roboter sind.",
        "error": "Senden fehlgeschlagen. Bitte versuchen Sie es gleich noch einmal.",
    },
    "nl": {
        "submit": "Versturen",
        "sending": "Bezig met versturen…",
        "success": "Bedankt! We nemen snel contact op.",
        "required": "Vul dit veld in.",
        "email": "Vul een geldig e-mailadres in.",
        "phone": "Vul een geldig telefoonnummer in, bijv. +31 20 123 4567.",
        "number": "Vul een aantal medewerkers in, bijv. 250 of 51-200.",
        "url": "Vul een webadres in, bijv. example.com.",
        "country": "Vul een land in, bijv. Nederland of NL.",
        "consent": "Vink dit vakje aan om door te gaan.",
        "captcha": "Bevestig dat u geen robot bent.",
        "error": "Versturen mislukt. Probeer het zo opnieuw.",
    },
    "zh": {
        "submit": "提交",
        "sending": "正在提交…",
        "success": "谢谢！我们会尽快与您联系。",
        "required": "请填写此字段。",
        "email": "请输入有效的电子邮件地址。",
        "phone": "请输入有效的电话号码，例如 +86 138 0013 8000。",
        "number": "请输入员工人数，例如 250 或 51-200。",
        "url": "请输入网址，例如 example.com。",
        "country": "请输入国家/地区，例如 中国 或 CN。",
        "consent": "请勾选此框以继续。",
        "captcha": "请确认您不是机器人。",
        "error": "提交失败，请稍后重试。",
    },
}
# What intake's page says when a plain HTML post has no page to land on (the snippet's messages are in
# MESSAGES, sent with embed.js; these are not).
PAGE_MESSAGES: dict[str, dict[str, str]] = {
    "en": {"fix": "Please correct the following and send the form again:", "back": "Back to the form"},
    "sv": {"fix": "Rätta följande och skicka formuläret igen:", "back": "Tillbaka till formuläret"},
    "de": {"fix": "Bitte korrigieren Sie Folgendes und senden Sie das Formular erneut:", "back": "Zurück zum Formular"},
    "nl": {"fix": "Corrigeer het volgende en verstuur het formulier opnieuw:", "back": "Terug naar het formulier"},
    "zh": {"fix": "请更正以下内容后重新提交表单：", "back": "返回表单"},
}


def language(accept_language: str) -> str:
    """The first of the five languages in an ``Accept-Language`` header (by its q-values), else English."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().lower().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in LANGUAGES and q > 0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else "en"
