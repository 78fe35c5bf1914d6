"""Prometheus metrics endpoint for any Lintas process (prometheus-client).

Each component declares its own metrics as a collector (``engine/metrics.py``,
``controllers/metrics.py``) whose ``collect`` reads the component's counters when Prometheus scrapes,
so nothing is added to the control tick. ``serve_metrics(port, collector)`` starts the HTTP endpoint,
on loopback unless told otherwise. Metric names are part of the operating interface:
``lintas_<component>_<name>``, counters end in ``_total`` (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import start_http_server
from prometheus_client.registry import Collector, CollectorRegistry


def serve_metrics(port: int, collector: Collector, addr: str = "127.0.0.1") -> Callable[[], None]:
    """Serve ``collector`` on http://addr:port/metrics; returns a function that stops the server."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    server, thread = start_http_server(port, addr=addr, registry=reg)

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return stop
