"""Prometheus text-format metrics for the engine and the controllers (prometheus-client).

Counters are read from the components when Prometheus scrapes (a custom collector), so nothing is
added to the control tick. ``serve_metrics(port, collector)`` starts the HTTP endpoint on loopback
unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

MODES = ("engine", "local", "failsafe", "starting")


class ControllerCollector(Collector):
    def __init__(self, controller) -> None:
        self.c = controller

    def collect(self) -> Iterator:
        c = self.c
        j = c.id
        cnt = c.counters
        acc = CounterMetricFamily("lintas_controller_commands_accepted", "Commands accepted", labels=["junction"])
        acc.add_metric([j], cnt.accepted)
        yield acc
        ref = CounterMetricFamily("lintas_controller_commands_refused", "Commands refused, by reason",
                                  labels=["junction", "reason"])
        for reason, n in sorted(cnt.refusals.items()):
            ref.add_metric([j, reason], n)
        yield ref
        for name, value, doc in (
            ("fallbacks", cnt.fallbacks, "Switches to the local plan"),
            ("faults", cnt.faults, "Faults latched by the conflict monitor"),
            ("heartbeat_gaps", cnt.heartbeat_gaps, "Engine silences longer than the backup time"),
            ("messages_dropped", c.cmd.stats.dropped + c.sub.stats.dropped, "Malformed or unknown frames dropped"),
            ("ticks", c.ticks_done, "Control ticks"),
        ):
            f = CounterMetricFamily(f"lintas_controller_{name}", doc, labels=["junction"])
            f.add_metric([j], value)
            yield f
        mode = GaugeMetricFamily("lintas_controller_mode", "1 for the current mode", labels=["junction", "mode"])
        for md in MODES:
            mode.add_metric([j, md], 1.0 if c.mode == md else 0.0)
        yield mode
        ph = GaugeMetricFamily("lintas_controller_phase", "Green phase served", labels=["junction"])
        ph.add_metric([j], c.timer.phase)
        yield ph


class EngineCollector(Collector):
    def __init__(self, engine) -> None:
        self.e = engine

    def collect(self) -> Iterator:
        e = self.e
        for name, value, doc in (
            ("commands_sent", e.commands_sent, "Phase commands sent"),
            ("ticks", e.ticks_done, "Control ticks"),
            ("messages_dropped", e.router.stats.dropped + e.sub.stats.dropped, "Malformed or unknown frames dropped"),
            ("unroutable", e.router.stats.drop_reasons.get("unroutable", 0), "Words for a controller not connected"),
        ):
            f = CounterMetricFamily(f"lintas_engine_{name}", doc)
            f.add_metric([], value)
            yield f
        desk = getattr(e, "desk", None)
        if desk is not None:
            f = CounterMetricFamily("lintas_engine_operator_dropped", "Malformed frames on the operator endpoint")
            f.add_metric([], desk.stats.dropped)
            yield f
            f = CounterMetricFamily("lintas_engine_operator_resets", "Operator reset requests by result",
                                    labels=["result"])
            for result, n in sorted(e.resets.items()):
                f.add_metric([result], n)
            yield f
        on = GaugeMetricFamily("lintas_engine_junction_online", "1 while the junction's controller reports",
                               labels=["junction"])
        for spec, flag in zip(e.net.junctions, e.online):
            on.add_metric([spec.id], 1.0 if flag else 0.0)
        yield on
        health = getattr(e.observer, "health_summary", None)
        if callable(health):
            g = GaugeMetricFamily("lintas_engine_sensors", "Sensors by health state", labels=["state"])
            for state, n in sorted(health().items()):
                if isinstance(n, (int, float)):
                    g.add_metric([str(state)], float(n))
            yield g


def serve_metrics(port: int, collector: Collector, addr: str = "127.0.0.1") -> Callable[[], None]:
    """Serve ``collector`` on http://addr:port/metrics; returns a function that stops the server."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    server, thread = start_http_server(port, addr=addr, registry=reg)

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return stop
