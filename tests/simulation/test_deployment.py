"""The field deployment of docs/deployment.md: the systemd unit templates under docs/deployment/ and their
environment files. Every unit's ExecStart, with its environment files' values and an instance name put in as
systemd does, is a command line the real ``lintas`` command tree takes; and the bus, the engine and a controller,
started from those very lines as separate processes over tcp with CURVE keys on the wall clock, drive a short SUMO
scenario (SUMO is the cabinet and the loops here: it shows what the controller shows and publishes its readings)."""

from __future__ import annotations

import configparser
import contextlib
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import cli
from simulation.experiments.catalog import REPO

UNITS = REPO / "docs" / "deployment"
UNIT_FILES = sorted(UNITS.glob("*.service"))
LINTAS = "/opt/lintas/.venv/bin/lintas"


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str
    cp.read_string(path.read_text())
    return cp


def _env_file(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def _environment(path: Path, instance: str, root: Path | None = None) -> dict[str, str]:
    """The values the unit's EnvironmentFile= lines give, from the shipped examples (/etc/lintas/X.env is
    docs/deployment/X.env; a per-instance file /etc/lintas/controller/%i.env is controller.env)."""
    env: dict[str, str] = {}
    files = [ln.split("=", 1)[1].strip() for ln in path.read_text().splitlines()
             if ln.startswith("EnvironmentFile=")]
    assert files, f"{path.name}: no EnvironmentFile"
    for f in files:
        f = f.lstrip("-")
        name = Path(f).name if "%i" not in f else f"{Path(f).parent.name}.env"
        example = UNITS / name
        assert example.is_file(), f"{path.name}: {f} has no example {example.name} in docs/deployment/"
        env.update(_env_file(example.read_text()))
    return env


def _exec_start(path: Path, instance: str, env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it: %i the instance; ${VAR} one word (or part of one); $VAR alone as a word:
    split at whitespace into zero or more words."""
    line = _unit(path)["Service"]["ExecStart"].replace("%i", instance)
    words = []
    for w in shlex.split(line):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            words += env.get(m.group(1), "").split()
            continue
        missing = [v for v in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", w) if v not in env]
        assert not missing, f"{path.name}: ExecStart uses ${{{missing[0]}}}, which no environment file sets"
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda mm: env[mm.group(1)], w))
    return words


@pytest.mark.parametrize("unit", UNIT_FILES, ids=[p.name for p in UNIT_FILES])
def test_every_unit_starts_a_command_the_real_cli_takes(unit):
    assert {"bus", "engine", "controller@", "camera@"} <= {p.stem.removeprefix("lintas-") for p in UNIT_FILES}
    cp = _unit(unit)
    assert cp["Install"]["WantedBy"] == "multi-user.target" and cp["Service"]["Restart"] == "always"
    words = _exec_start(unit, "A1", _environment(unit, "A1"))
    assert words[0] == LINTAS
    name, args = words[1], words[2:]
    if name not in cli.COMMANDS:
        pytest.skip(f"lintas {name} is not in this checkout (its unit is ready for it)")
    cmd = cli.load(name)
    ctx = cmd.make_context(f"lintas {name}", list(args))  # click parses and converts every option, runs nothing
    given = {k for k, v in ctx.params.items() if v not in (None, False, (), [])}
    assert "keys" in given, f"{unit.name}: runs without --keys"
    if name != "camera":  # the camera worker's health goes on the bus; it serves no metrics port
        assert "metrics_port" in given, f"{unit.name}: no --metrics-port"
    if name in ("engine", "controller"):
        assert ctx.params["clock"] == "wall"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_the_units_run_a_short_scenario_over_tcp_with_keys(tmp_path):
    """bus, engine and controller from their units' ExecStart (paths under tmp_path instead of /etc/lintas and
    /opt/lintas, loopback ports), SUMO stepped once per wall second: the controller comes under engine control,
    takes the engine's commands, and SUMO shows what it shows."""
    import msgspec
    import zmq
    from onejunction import one_junction

    from engine.protocol import bus
    from engine.protocol import messages as m
    from engine.protocol.junction import write_specs
    from engine.protocol.security import Security, create_keys
    from simulation.sumo.field import SumoField
    from simulation.sumo.netcompile import compile_for_run
    from simulation.sumo.options import merge_additional
    from simulation.sumo.outputs import sumo_output_args
    from simulation.sumo.scenario import config_for_sumo, load_scenario

    etc = tmp_path / "etc"
    etc.mkdir()
    scn = load_scenario(one_junction(tmp_path / "scen", end=400.0))
    net, det_file = compile_for_run(scn, tmp_path / "compiled")
    net.to_json(etc / "network.json")
    specs = write_specs(net.junctions, etc / "junctions")
    (jid,) = list(specs)
    create_keys(etc / "keys", ["engine", "bus", "field", "controller"])
    ports = {k: _free_port() for k in ("in", "out", "cmd", "op", "m_bus", "m_engine", "m_ctrl")}
    env = {"LINTAS_KEYS": str(etc / "keys"), "LINTAS_BUS_IN": f"tcp://127.0.0.1:{ports['in']}",
           "LINTAS_BUS_OUT": f"tcp://127.0.0.1:{ports['out']}", "LINTAS_COMMANDS": f"tcp://127.0.0.1:{ports['cmd']}",
           "BUS_BIND_IN": f"tcp://127.0.0.1:{ports['in']}", "BUS_BIND_OUT": f"tcp://127.0.0.1:{ports['out']}",
           "BUS_METRICS_PORT": str(ports["m_bus"]), "LINTAS_NETWORK": str(etc / "network.json"),
           "ENGINE_POLICY": "maxpressure", "ENGINE_BIND_COMMANDS": f"tcp://127.0.0.1:{ports['cmd']}",
           "ENGINE_OPERATOR_ENDPOINT": f"tcp://127.0.0.1:{ports['op']}", "ENGINE_METRICS_PORT": str(ports["m_engine"]),
           "METRICS_PORT": str(ports["m_ctrl"]), "PLAN_ARGS": ""}
    procs: list[subprocess.Popen] = []

    def start(unit: str, instance: str = "") -> None:
        words = [w.replace("/etc/lintas", str(etc)) for w in _exec_start(UNITS / unit, instance, env)]
        assert words[0] == LINTAS
        log = open(tmp_path / f"{unit}.log", "wb")  # noqa: SIM115 - the process writes to it while it lives
        procs.append(subprocess.Popen([sys.executable, "-m", "cli", *words[1:]], cwd=REPO, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    ctx = zmq.Context()
    sec = Security.load(etc / "keys", "field", ctx)
    ep = bus.Endpoints(env["LINTAS_BUS_IN"], env["LINTAS_BUS_OUT"], env["LINTAS_COMMANDS"])
    field = SumoField(net, use_traci=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    try:
        start("lintas-bus.service")
        start("lintas-engine.service")
        start("lintas-controller@.service", jid)
        pub = bus.Publisher(ctx, ep, security=sec)
        sub = bus.Subscriber(ctx, ep, [m.TOPIC_STATE], security=sec)
        args = ["-c", str(config_for_sumo(scn, run_dir)), "--seed", "1", "--time-to-teleport", "-1", "--no-step-log",
                "true", "--no-warnings", "true", "--end", "400", *sumo_output_args(run_dir)]
        field.start(merge_additional(args, [*scn.additional_files, det_file]))
        t = field.time()
        states: list[m.ControllerState] = []
        shown = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            # the loops' readings, stamped in the wall clock as roadside equipment stamps them
            pub.publish(m.TOPIC_DETECTORS, msgspec.structs.replace(field.read(t), time=float(int(time.time()))))
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                sub.sock.poll(100)
                for _topic, st in sub.drain():
                    if isinstance(st, m.ControllerState) and st.junction == jid:
                        states.append(st)
            if states:
                field.show(jid, states[-1].signal)
                shown += 1
            t = field.advance(t + 1.0)
            if shown >= 12 and states[-1].mode == m.Mode.ENGINE and states[-1].accepted > 0:
                break
        for p, log in zip(procs, sorted(tmp_path.glob("*.log"), key=lambda f: f.stat().st_ctime), strict=True):
            assert p.poll() is None, f"{log.name}: {log.read_text()[-2000:]}"
        engine_metrics, ctrl_metrics = _metrics(ports["m_engine"]), _metrics(ports["m_ctrl"])
        assert "lintas_bus" in _metrics(ports["m_bus"])
    finally:
        field.close()
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
            if p.poll() is None:
                p.kill()
        with contextlib.suppress(Exception):
            pub.close()
            sub.close()
        sec.close()
        ctx.destroy(linger=0)
    logs = "\n".join(f"{p.name}: {p.read_text()[-800:]}" for p in sorted(tmp_path.glob("*.log")))
    assert states, f"no controller state on the bus\n{logs}"
    last = states[-1]
    assert last.mode == m.Mode.ENGINE and last.accepted > 0 and last.refused == 0, (last, logs)
    assert shown >= 12 and abs(last.time - time.time()) < 5  # the wall clock, as in the field
    assert "lintas_engine" in engine_metrics and "lintas_controller" in ctrl_metrics
