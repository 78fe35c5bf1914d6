"""The controller's Prometheus metrics (served by ``engine.protocol.telemetry.serve_metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.protocol.messages import Mode

if TYPE_CHECKING:
    from controllers.controller import Controller


class ControllerCollector(Collector):
    """Counters and gauges of one junction controller, read when Prometheus scrapes."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator:
        c = self.controller
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
        for md in Mode:
            mode.add_metric([j, md.value], 1.0 if c.mode == md else 0.0)
        yield mode
        ph = GaugeMetricFamily("lintas_controller_phase", "Green phase served", labels=["junction"])
        ph.add_metric([j], c.timer.phase)
        yield ph
