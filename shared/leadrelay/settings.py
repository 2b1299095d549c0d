"""Process settings, read from the environment (12-factor).

This is the only module that reads the environment. Business rules (lead
definition, territories, SLA policies) live in the rules file named by
``LEADRELAY_CONFIG``; see :mod:`leadrelay.rules`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS: dict[str, int] = {
    "intake": 8001,
    "scoring": 8002,
    "routing": 8003,
    "sla-monitor": 8004,
    "feedback": 8005,
    "console": 8000,  # the web console's own process (`leadrelay serve console`)
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADRELAY_", extra="ignore")

    config: Path = Field(
        default=Path("config/example.yaml"),
        description="Path of the rules file (lead definition, territories, SLA policies).",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL. postgresql+asyncpg://... gives each service its own schema in"
            " that database; unset means embedded SQLite files under data_dir."
        ),
    )
    data_dir: Path = Field(default=Path(".leadrelay"), description="Where embedded mode keeps its SQLite files.")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str = "leadrelay"
    kafka_prefix: str = Field(
        default="", description="Prefix of every topic and consumer group (several environments on one cluster)."
    )
    kafka_replication_factor: int = Field(default=1, ge=1, description="Used by `leadrelay create-topics`.")
    schema_prefix: str = Field(default="", description="Prefix of every service's PostgreSQL schema.")
    host: str = "127.0.0.1"
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or networks (CIDR) of the reverse proxies in front of Leadrelay:"
            " only from these is X-Forwarded-For / X-Forwarded-Proto believed (the client's address"
            " drives the per-address form limits). Empty: never, the peer's address is the client's."
        ),
    )
    port: int | None = Field(default=None, description="HTTP port; default 8000 embedded, 8001-8005 per service.")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    opentelemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's OpenTelemetry instrumentation (traces, metrics, logs to the OTel providers"
            " you configure). Off, each request skips its checks; /metrics and the JSON logs stay."
        ),
    )
    lead_id_namespace: str = Field(
        default="6f1b6d0e-6c1e-4d8e-9a55-3b7f2c9d0a11",
        description="UUID namespace lead ids are derived from (uuid5 of the normalised email).",
    )

    # Sign-in (leadrelay.auth).
    auth_signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "HS256 key that signs and verifies bearer tokens: random, at least 32 characters."
            " Required by `leadrelay serve`; `leadrelay run` generates one into data_dir when unset."
        ),
    )
    auth_previous_signing_key: SecretStr | None = Field(
        default=None,
        description="The key before a rotation: tokens it signed stay valid until they expire or it is removed.",
    )
    metrics_public: bool = Field(
        default=False,
        description="GET /metrics without a credential; otherwise it needs ops, admin or a monitoring source.",
    )
    # Limits on a request, enforced before it is parsed (leadrelay.limits).
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request body a route accepts (413 above), unless the route declares its own limit.",
    )
    # Well under the recursion limit of the JSON parsers that run after the check.
    max_json_depth: int = Field(default=32, ge=2, le=256, description="Deepest JSON nesting accepted (422 deeper).")
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request line and headers together (431 above)."
    )
    max_form_fields: int = Field(default=200, ge=1, description="Most fields in one form submission (422 above).")

    # Intake's spam protections (per process: see docs/website.md on several replicas).
    form_rate_per_address: float = Field(
        default=0.5, gt=0, description="Form posts per second one client address may sustain (token bucket refill)."
    )
    form_burst_per_address: int = Field(default=10, ge=1, description="Form posts one client address may burst.")
    form_rate_per_source: float = Field(
        default=50, gt=0, description="Form posts per second one form (or Web-to-Lead source) may sustain."
    )
    form_burst_per_source: int = Field(default=500, ge=1, description="Form posts one form may burst.")
    captcha_verify_url: str | None = Field(
        default=None, description="siteverify URL for every captcha (default: each form's, else the provider's)."
    )
    captcha_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for the captcha verifier.")

    # The web console (`leadrelay serve console`; embedded, `leadrelay run` serves it at / itself).
    console_secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Signs the console's CSRF tokens: random, at least 32 characters, the same for every console"
            " replica. Required by `leadrelay serve console`; `leadrelay run` generates one into data_dir."
        ),
    )
    console_poll_seconds: float = Field(
        default=1.0, gt=0, le=10, description="How often the console asks the services for news per open page."
    )
    intake_url: str = Field(default="http://127.0.0.1:8001", description="Where the console reaches intake.")
    scoring_url: str = Field(default="http://127.0.0.1:8002", description="Where the console reaches scoring.")
    routing_url: str = Field(default="http://127.0.0.1:8003", description="Where the console reaches routing.")
    sla_monitor_url: str = Field(default="http://127.0.0.1:8004", description="Where the console reaches sla-monitor.")
    feedback_url: str = Field(default="http://127.0.0.1:8005", description="Where the console reaches feedback.")

    # Dependencies down: requests answer 503 within seconds instead of hanging (leadrelay.db).
    db_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Longest wait to connect to PostgreSQL, or for a pooled connection."
    )
    db_command_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest a statement may take on PostgreSQL (migrations are not bounded)."
    )
    # Intake's spool: what it accepted while the broker could not store it (intake.spool).
    intake_spool: Literal["fallback", "always"] = Field(
        default="fallback",
        description=(
            "fallback: publish directly, spool only what the broker does not acknowledge within"
            " intake_direct_timeout_ms (and everything while the spool holds events); always: spool every event."
        ),
    )
    intake_direct_timeout_ms: int = Field(
        default=300, ge=10, le=5000, description="How long intake waits for the broker before spooling an event."
    )
    intake_spool_max_events: int = Field(
        default=1_000_000, ge=1, description="Events the spool may hold; beyond it intake answers 503."
    )

    # Consumer tuning.
    consumer_max_records: int = Field(default=500, ge=1)
    consumer_fetch_timeout_ms: int = Field(default=100, ge=1)
    consumer_stall_seconds: float = Field(
        default=60.0, gt=0, description="A consumer with lag that makes no progress this long is restarted."
    )
    consumer_retry_max_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait between retries of a failing batch (backoff doubles up to it)."
    )
    # Dead letters: only records that can never succeed go to <topic>.dlq; a group stops instead
    # when more than this share of its recent records would.
    dlq_max_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Stop a consumer when more than this share of its recent records are undecodable.",
    )
    dlq_window: int = Field(default=200, ge=1, description="How many recent records the share is measured over.")
    dlq_min_records: int = Field(default=20, ge=1, description="The share applies once this many records were seen.")
    # Outbox relay: it publishes right after each commit; the poll is only a safety net.
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    producer_linger_ms: int = Field(default=5, ge=0)
    # SLA timer resolution.
    sla_tick_seconds: float = Field(default=1.0, gt=0)

    # Notifications (sent by sla-monitor; who hears of what is in the rules file).
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where people and websites reach Leadrelay's API (a gateway in front of the services).",
    )
    console_url: str | None = Field(
        default=None,
        description="Where people open the console; notifications link to {console_url}/leads/{lead_id} "
        "(unset: public_base_url, where the embedded console is).",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail notifications.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (implicit, port 465) or none (a local relay)."
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = Field(
        default=None, description='Sender of e-mails, e.g. "Leadrelay <leadrelay@example.com>".'
    )
    notify_timeout_seconds: float = Field(default=10.0, gt=0, description="Per delivery attempt (HTTP or SMTP).")
    notify_concurrency: int = Field(default=4, ge=1, description="Sends in flight per endpoint (all e-mail: one).")
    notify_retry_for_seconds: float = Field(
        default=86400.0, ge=0, description="Keep retrying a failing delivery this long (24 h) before marking it failed."
    )
    notify_backoff_seconds: float = Field(default=5.0, gt=0, description="First retry delay; doubles per attempt.")
    notify_backoff_max_seconds: float = Field(default=3600.0, gt=0, description="Longest delay between attempts.")
    notify_poll_seconds: float = Field(default=1.0, gt=0, description="How often due deliveries are looked for.")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def service_urls(self) -> dict[str, str]:
        """The base URL of each service, as the console reaches them in distributed mode."""
        return {
            "intake": self.intake_url,
            "scoring": self.scoring_url,
            "routing": self.routing_url,
            "sla-monitor": self.sla_monitor_url,
            "feedback": self.feedback_url,
        }

    def http_port(self, service: str | None) -> int:
        if self.port is not None:
            return self.port
        return 8000 if service is None else DEFAULT_PORTS[service]


def environment_secret(name: str) -> SecretStr | None:
    """A secret the rules file names by its environment variable (a webhook's ``secret_env``...):
    the rules say which variable, the environment holds the value. None when unset or empty."""
    value = os.environ.get(name)
    return SecretStr(value) if value else None
