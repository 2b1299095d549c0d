"""Process settings, read from the environment (12-factor).

This is the only module that reads the environment. Business rules (lead
definition, territories, SLA policies) live in the rules file named by
``LEADRELAY_CONFIG``; see :mod:`leadrelay.rules`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS: dict[str, int] = {
    "intake": 8001,
    "scoring": 8002,
    "routing": 8003,
    "sla-monitor": 8004,
    "feedback": 8005,
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
    max_body_bytes: int = Field(
        default=1_048_576, ge=1, description="Largest request body the HTTP API reads; a larger one is a 413."
    )
    lead_id_namespace: str = Field(
        default="6f1b6d0e-6c1e-4d8e-9a55-3b7f2c9d0a11",
        description="UUID namespace lead ids are derived from (uuid5 of the normalised email).",
    )

    # Consumer tuning.
    consumer_max_records: int = Field(default=500, ge=1)
    consumer_fetch_timeout_ms: int = Field(default=100, ge=1)
    consumer_stall_seconds: float = Field(
        default=60.0, gt=0, description="A consumer with lag that makes no progress this long is restarted."
    )
    # Outbox relay: it publishes right after each commit; the poll is only a safety net.
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    producer_linger_ms: int = Field(default=5, ge=0)
    # SLA timer resolution.
    sla_tick_seconds: float = Field(default=1.0, gt=0)

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def http_port(self, service: str | None) -> int:
        if self.port is not None:
            return self.port
        return 8000 if service is None else DEFAULT_PORTS[service]
