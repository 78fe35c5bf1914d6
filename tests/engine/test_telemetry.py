"""Prometheus metrics over a real HTTP server, read from real components."""

import socket
import urllib.request

import zmq

from controllers.controller import Controller
from controllers.metrics import ControllerCollector
from engine.metrics import EngineCollector
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.telemetry import serve_metrics
from simulation.experiments.catalog import DEMO
from simulation.sumo.netcompile import compile_network
from simulation.sumo.scenario import load_scenario


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_controller_and_engine_metrics():
    from engine.loop import Engine

    net = compile_network(load_scenario(DEMO))
    spec = net.junctions[0]
    ctx = zmq.Context()
    ep = bus.endpoints("inproc")
    fwd = bus.Forwarder(ep, ctx).start()
    eng = Engine(net, "fixed", ep, ctx=ctx)
    ctrl = Controller(spec, ep, ctx=ctx, lockstep=False)
    stops = []
    try:
        ctrl.do_tick(0.0)
        ctrl.receive(m.PhaseCommand(junction="elsewhere", action="advance", phase=0, seq=1, issued_at=0.0))
        ctrl.receive(m.PhaseCommand(junction=spec.id, action="advance", phase=99, seq=2, issued_at=0.0))
        ctrl.receive(m.PhaseCommand(junction=spec.id, action="hold", phase=-1, seq=3, issued_at=0.0))
        for t in range(1, 8):  # no engine word after t=0: falls back to the local plan
            ctrl.do_tick(float(t))
        pc, pe = _port(), _port()
        stops.append(serve_metrics(pc, ControllerCollector(ctrl)))
        stops.append(serve_metrics(pe, EngineCollector(eng)))
        text = _scrape(pc)
        j = spec.id
        assert f'lintas_controller_commands_accepted_total{{junction="{j}"}} 1.0' in text
        assert f'lintas_controller_commands_refused_total{{junction="{j}",reason="wrong-junction"}} 1.0' in text
        assert f'lintas_controller_commands_refused_total{{junction="{j}",reason="no-such-phase"}} 1.0' in text
        assert f'lintas_controller_fallbacks_total{{junction="{j}"}} 1.0' in text
        assert f'lintas_controller_mode{{junction="{j}",mode="local"}} 1.0' in text
        etext = _scrape(pe)
        assert "lintas_engine_commands_sent_total 0.0" in etext
        assert f'lintas_engine_junction_online{{junction="{j}"}} 0.0' in etext
    finally:
        for s in stops:
            s()
        ctrl.close()
        eng.close()
        fwd.stop()
        ctx.destroy(linger=0)
