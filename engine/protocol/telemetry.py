"""Prometheus metrics endpoint for any Lintas process (prometheus-client).

Each component declares its own metrics as a collector (``engine/metrics.py``,
``controllers/metrics.py``) whose ``collect`` reads the component's counters when Prometheus scrapes,
so nothing is added to the control tick. ``serve_metrics(port, collector, ...)`` starts the HTTP endpoint,
on loopback unless told otherwise. Metric names are part of the operating interface:
``lintas_<component>_<name>``, counters end in ``_total`` (docs/protocol.md). Every process that serves
metrics also serves its connections' (:class:`ConnectionCollector`: keys it refused, handshakes refused to it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

#: reasons always shown (0 until one happens), so that an alert can watch them from the start
SERVER_REASONS = ("unknown-key", "no-curve")


def serve_metrics(port: int, collector: Collector, *more: Collector, addr: str = "127.0.0.1") -> Callable[[], None]:
    """Serve ``collector`` (and ``more``) on http://addr:port/metrics; returns a function that stops the server."""
    reg = CollectorRegistry(auto_describe=False)
    for c in (collector, *more):
        reg.register(c)
    server, thread = start_http_server(port, addr=addr, registry=reg)

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return stop


class ConnectionCollector(Collector):
    """``lintas_<component>_auth_refused_total{reason}``: clients this process's servers refused (a CURVE key
    not in ``allowed/``, a client without keys, ...: ``Security.refused`` and ``HandshakeWatch.refused``);
    ``lintas_<component>_handshake_failed_total{peer,reason}``: handshakes of its own connections that failed
    (``HandshakeWatch.failed``: ``refused`` when the bus or the engine refused this process's key)."""

    def __init__(self, component: str, security=None, watch=None) -> None:
        self.component = component
        self.security = security
        self.watch = watch

    def collect(self) -> Iterator:
        refused: Counter[str] = Counter(dict.fromkeys(SERVER_REASONS, 0))
        if self.security is not None:
            refused.update(self.security.refused())
        failed: Counter[tuple[str, str]] = Counter()
        if self.watch is not None:
            refused.update(dict(self.watch.refused))  # dict(): one C-level copy while its thread counts on
            failed.update(dict(self.watch.failed))
        f = CounterMetricFamily(f"lintas_{self.component}_auth_refused", "Clients refused at the handshake, by "
                                "reason", labels=["reason"])
        for reason, n in sorted(refused.items()):
            f.add_metric([reason], n)
        yield f
        f = CounterMetricFamily(f"lintas_{self.component}_handshake_failed", "Own connections whose handshake "
                                "failed, by server and reason", labels=["peer", "reason"])
        for (peer, reason), n in sorted(failed.items()):
            f.add_metric([peer, reason], n)
        yield f
