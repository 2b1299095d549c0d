"""A small client for Toxiproxy's HTTP API (https://github.com/Shopify/toxiproxy#http-api),
for the network-fault tests and the soak run. The server runs from deploy/toxiproxy.sh.

A proxy listens on one port and forwards to an upstream; toxics on it add faults to the
traffic, ``downstream`` (towards the client) or ``upstream`` (towards the server):

- ``latency``: ``latency`` ms (plus up to ``jitter`` ms) on every chunk of data;
- ``timeout``: stops all data and closes the connection after ``timeout`` ms (0: never closes);
- ``reset_peer``: resets the connection (TCP RST) after ``timeout`` ms;
- ``bandwidth``: at most ``rate`` KB/s;
- ``slicer``: cuts data into ``average_size`` byte slices (give or take ``size_variation``),
  ``delay`` microseconds apart.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "toxiproxy.sh"


@dataclass(frozen=True)
class Proxy:
    api: Toxiproxy
    name: str
    listen: str
    upstream: str

    def toxic(
        self, type_: str, stream: str, attributes: dict[str, int], toxicity: float = 1.0, name: str | None = None
    ) -> str:
        """Adds a toxic; returns its name (for ``remove``)."""
        name = name or f"{type_}_{stream}"
        self.api.request(
            "POST",
            f"/proxies/{self.name}/toxics",
            json={"name": name, "type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )
        return name

    def remove(self, toxic: str) -> None:
        self.api.request("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def toxics(self) -> list[dict[str, Any]]:
        return list(self.api.request("GET", f"/proxies/{self.name}/toxics").json())

    def clear(self) -> None:
        for t in self.toxics():
            self.remove(t["name"])

    def enable(self, enabled: bool = True) -> None:
        """A disabled proxy closes its connections and refuses new ones (a cut cable)."""
        self.api.request("POST", f"/proxies/{self.name}", json={"enabled": enabled})

    @contextmanager
    def fault(self, type_: str, stream: str = "downstream", **attributes: int) -> Iterator[str]:
        name = self.toxic(type_, stream, attributes)
        try:
            yield name
        finally:
            self.remove(name)


class Toxiproxy:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        r = self.client.request(method, path, json=json)
        if r.status_code >= 300:
            raise RuntimeError(f"toxiproxy {method} {path}: {r.status_code} {r.text}")
        return r

    def version(self) -> str:
        return self.request("GET", "/version").text

    def create(self, name: str, listen: str, upstream: str) -> Proxy:
        """Creates (or replaces) a proxy listening on ``listen`` (host:port) in front of ``upstream``."""
        r = self.client.get(f"/proxies/{name}")
        if r.status_code == 200:
            self.request("DELETE", f"/proxies/{name}")
        self.request("POST", "/proxies", json={"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        return Proxy(self, name, listen, upstream)

    def proxies(self) -> dict[str, Any]:
        return dict(self.request("GET", "/proxies").json())

    def reset(self) -> None:
        """Enables every proxy and removes every toxic."""
        self.request("POST", "/reset")

    def close(self) -> None:
        self.client.close()


@contextmanager
def toxiproxy_server(port: int, data_dir: Path) -> Iterator[Toxiproxy]:
    """Starts a Toxiproxy server on 127.0.0.1:``port`` (built on first use), stops it afterwards."""
    env = {**os.environ, "TOXIPROXY_PORT": str(port), "TOXIPROXY_DATA_DIR": str(data_dir)}

    def script(action: str) -> None:
        subprocess.run([str(SCRIPT), action], check=True, env=env, timeout=600)  # noqa: S603

    script("start")
    api = Toxiproxy(f"http://127.0.0.1:{port}")
    try:
        yield api
    finally:
        api.close()
        script("stop")
