"""Who may do what: the roles each kind of route allows (docs/access.md's roles table)."""

from leadrelay.rules import Role, SourceRole

PEOPLE = (Role.REP, Role.MANAGER, Role.OPS, Role.ADMIN)
LEAD_READERS = (*PEOPLE, SourceRole.CRM)  # per-lead views and lead lists, filtered by ownership
FEEDBACK_WRITERS = (*PEOPLE, SourceRole.CRM)  # touches and dispositions
EVENT_SENDERS = (*PEOPLE, SourceRole.TRACKING, SourceRole.CRM)  # behaviour events
SUPPRESSION_READERS = (*PEOPLE, SourceRole.CRM)  # marketing tools read it through the CRM source
AVAILABILITY_SETTERS = (Role.MANAGER, Role.OPS, Role.ADMIN)
METRICS_READERS = (Role.OPS, Role.ADMIN, SourceRole.MONITORING)
DELIVERY_OPERATORS = (Role.OPS, Role.ADMIN)  # the notification delivery log and redelivery
