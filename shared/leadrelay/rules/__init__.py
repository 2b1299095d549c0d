"""The business rules revenue operations owns: forms, lead definition, territories, SLA policies.

They live in one YAML file kept in version control (``LEADRELAY_CONFIG``), are
validated at start-up with errors that name the offending key, and are served
read-only by the API, because the definition must be shared and visible.

One module per section of the file, each named after it: ``conditions`` and
``lead_definition`` (scoring's), ``forms`` and ``tracking`` (intake's),
``territories`` (routing's), ``sla`` and ``notifications`` (sla-monitor's),
``people`` and ``sources`` (who signs in and which machines call), the shared
value types in ``values``, the whole file's model in ``model`` and its reading
in ``loader``. Import the names from ``leadrelay.rules``.
"""

from leadrelay.rules.conditions import Condition
from leadrelay.rules.forms import (
    CONSENT_LANGUAGES,
    LANGUAGES,
    Captcha,
    Consent,
    FieldType,
    Form,
    FormField,
    HubSpotForm,
    Labels,
    Website,
    WebToLead,
    WebUrl,
)
from leadrelay.rules.lead_definition import Disqualifier, EngagementRule, FitRule, LeadDefinition, ScopeName
from leadrelay.rules.loader import RulesError, load_rules, parse_rules
from leadrelay.rules.model import Rules
from leadrelay.rules.notifications import (
    EmailNotifications,
    Marketing,
    Notifications,
    NotificationType,
    SlackWebhook,
    Webhook,
)
from leadrelay.rules.people import Person, Role
from leadrelay.rules.sla import Sla, SlaPolicy, WarnBefore
from leadrelay.rules.sources import Source, SourceRole
from leadrelay.rules.territories import Account, Rep, Routing, Territory
from leadrelay.rules.tracking import Tracking
from leadrelay.rules.values import NAME_MAX, CountryCode, Duration, Origin, country_code, web_origin

__all__ = [
    "CONSENT_LANGUAGES",
    "LANGUAGES",
    "NAME_MAX",
    "Account",
    "Captcha",
    "Condition",
    "Consent",
    "CountryCode",
    "Disqualifier",
    "Duration",
    "EmailNotifications",
    "EngagementRule",
    "FieldType",
    "FitRule",
    "Form",
    "FormField",
    "HubSpotForm",
    "Labels",
    "LeadDefinition",
    "Marketing",
    "NotificationType",
    "Notifications",
    "Origin",
    "Person",
    "Rep",
    "Role",
    "Routing",
    "Rules",
    "RulesError",
    "ScopeName",
    "SlackWebhook",
    "Sla",
    "SlaPolicy",
    "Source",
    "SourceRole",
    "Territory",
    "Tracking",
    "WarnBefore",
    "WebToLead",
    "WebUrl",
    "Webhook",
    "Website",
    "country_code",
    "load_rules",
    "parse_rules",
    "web_origin",
]
