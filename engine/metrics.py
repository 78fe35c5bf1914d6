"""The engine's Prometheus metrics (served by ``engine.protocol.telemetry.serve_metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from engine.loop import Engine


class EngineCollector(Collector):
    """Counters and gauges of one engine, read when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator:
        e = self.engine
        for name, value, doc in (
            ("commands_sent", e.commands_sent, "Phase commands sent"),
            ("ticks", e.ticks_done, "Control ticks"),
            ("messages_dropped", e.router.stats.dropped + e.sub.stats.dropped, "Malformed or unknown frames dropped"),
            ("unroutable", e.router.stats.drop_reasons.get("unroutable", 0), "Words for a controller not connected"),
        ):
            f = CounterMetricFamily(f"lintas_engine_{name}", doc)
            f.add_metric([], value)
            yield f
        server = e.operator_server
        if server is not None:
            f = CounterMetricFamily("lintas_engine_operator_dropped", "Malformed frames on the operator endpoint")
            f.add_metric([], server.stats.dropped)
            yield f
            f = CounterMetricFamily("lintas_engine_operator_resets", "Operator reset requests by result",
                                    labels=["result"])
            for result, n in sorted(e.resets.items()):
                f.add_metric([str(result)], n)
            yield f
        on = GaugeMetricFamily("lintas_engine_junction_online", "1 while the junction's controller reports",
                               labels=["junction"])
        for spec, flag in zip(e.net.junctions, e.online):
            on.add_metric([spec.id], 1.0 if flag else 0.0)
        yield on
        skew = GaugeMetricFamily("lintas_engine_clock_skew", "1 while the junction's controller clock is off by "
                                 "more than the skew limit (the engine corrects for it; clock-skew alarm)",
                                 labels=["junction"])
        off = GaugeMetricFamily("lintas_engine_clock_offset_seconds", "Seconds the junction's controller clock is "
                                "behind the engine's, where corrected for (0 within the skew limit)",
                                labels=["junction"])
        for spec, flag, o in zip(e.net.junctions, e.skewed, e.offset):
            skew.add_metric([spec.id], 1.0 if flag else 0.0)
            off.add_metric([spec.id], float(o))
        yield skew
        yield off
        g = GaugeMetricFamily("lintas_engine_sensors", "Sensors by health state (no-data: never reported)",
                              labels=["state"])
        for state, n in sorted(e.fusion.health_summary().items()):
            if isinstance(n, (int, float)):
                g.add_metric([str(state)], float(n))
        yield g
        feed = e.feed
        yield GaugeMetricFamily("lintas_engine_feed_alarm", "1 while no detector reading has arrived for the "
                                "feed-alarm time", value=1.0 if feed.alarm else 0.0)
        yield GaugeMetricFamily("lintas_engine_feed_age_seconds", "Seconds since the last detector reading (since "
                                "the first tick before any)", value=feed.age)
        f = CounterMetricFamily("lintas_engine_feed_alarms", "Feed alarms raised")
        f.add_metric([], feed.alarms)
        yield f
