"""A dependency (the database, the broker) that cannot take work now.

Raised wherever Leadrelay finds out (the database engine translates a refused or
timed-out connection and a lost server into it, the Kafka bus a producer that
cannot reach a broker); ``leadrelay.http`` answers it with 503, ``Retry-After``
and a body naming the dependency, and the consumers count it as transient and
retry. The names are the ones the API shows: ``postgresql``, ``sqlite``,
``kafka``.
"""

from __future__ import annotations

# What a client is told to wait before retrying: a dependency back from a restart
# is usually reachable within seconds.
RETRY_AFTER_SECONDS = 2


class Unavailable(Exception):
    """``dependency`` cannot be reached now; the request may be retried after ``retry_after`` seconds."""

    def __init__(
        self, dependency: str, detail: str, retry_after: int = RETRY_AFTER_SECONDS, public: str | None = None
    ) -> None:
        super().__init__(detail)
        self.dependency = dependency
        self.detail = detail  # for the log: the error itself
        self.retry_after = retry_after
        self.public = public  # for the client, when the dependency's name does not say enough
