"""The command tree (cli/): every command listed, a package imported only when its command runs, the engine
started from a compiled network without SUMO, and a clear word when an optional install is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import typer.main
from clirun import lintas

import cli
from engine.protocol import bus
from engine.protocol.junction import write_specs
from simulation.experiments.catalog import DEMO, REPO

# What a roadside controller must never load: SUMO, the policy kernels (numba), the engine, simulation.
HEAVY = ("sumo", "sumolib", "libsumo", "traci", "numba", "matplotlib", "simulation", "benchmarks", "engine.policies",
         "engine.loop", "engine.fusion", "engine.cli")

# Run the command tree in a fresh interpreter, print the Lintas and heavy modules it loaded; optionally with some
# modules made unimportable (sys.modules[name] = None), as on a machine without the [sim] install.
PROBE = """
import sys, json
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["lintas", *{args!r}]
import cli
code = 0
try:
    cli.main()
except SystemExit as exc:
    code = exc.code
print("MODULES " + json.dumps(sorted(sys.modules)))
sys.exit(code)
"""

NO_SUMO = ("sumo", "sumolib", "libsumo", "traci")


def probe(*args: str, blocked: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, set[str]]:
    import json

    r = subprocess.run([sys.executable, "-c", PROBE.format(args=list(args), blocked=list(blocked))], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("MODULES "))
    return r, set(json.loads(line[len("MODULES "):]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_lists_every_command_without_importing_any_package():
    r, modules = probe("--help")
    assert r.returncode == 0, r.stderr
    for name in cli.COMMANDS:
        assert f" {name} " in r.stdout, name
    loaded = {e.module for e in cli.COMMANDS.values()} & modules
    assert not loaded and not heavy(modules), (loaded, heavy(modules))


def test_controller_help_imports_neither_sumo_nor_the_policy_kernels():
    r, modules = probe("controller", "--help")
    assert r.returncode == 0 and "Junction spec JSON" in r.stdout, r.stderr
    assert "controllers.cli" in modules and not heavy(modules), heavy(modules)


def test_each_summary_is_the_first_sentence_of_the_commands_own_help():
    for name, entry in cli.COMMANDS.items():
        cmd = cli.load(name)
        own = (cmd.help or "").replace("\n", " ")
        assert own.startswith(entry.summary), (name, entry.summary, own[:120])
        assert entry.name is None or "Example: lintas" in own, f"{name}: --help shows no example"


def test_bench_is_a_group_of_its_own():
    group = cli.load("bench")
    assert set(group.commands) >= {"bus", "engine", "eta", "loop", "quality", "zoo"}
    assert isinstance(typer.main.get_command(cli.app), cli.LazyGroup)


def test_a_command_of_a_missing_install_names_the_extra():
    r, _ = probe("simulate", str(DEMO), blocked=NO_SUMO)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "lintas[sim]" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_engine_from_a_scenario_without_sumo_says_to_compile_first():
    r, _ = probe("engine", str(DEMO), "--clock", "wall", blocked=NO_SUMO)
    assert r.returncode == 2 and "--network" in r.stderr and "[sim]" in r.stderr, r.stderr


def test_engine_needs_exactly_one_network():
    r = lintas("engine", timeout=60)
    assert r.returncode == 2 and "--network FILE" in r.stderr, r.stderr
    r = lintas("engine", "--network", str(REPO / "README.md"), timeout=60)
    assert r.returncode == 2 and "README.md" in r.stderr and "not JSON" in r.stderr, r.stderr


def _start(args: list[str], blocked: tuple[str, ...] = ()) -> subprocess.Popen:
    code = (f"import sys\nfor n in {list(blocked)!r}:\n    sys.modules[n] = None\n"
            f"sys.argv = ['lintas', *{args!r}]\nimport cli\ncli.main()\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _commanded(proc: subprocess.Popen, spec, ep: bus.Endpoints, timeout: float = 60.0) -> bool:
    """A controller of ``spec`` in this process, on wall-clock ticks: True once it hears the engine."""
    import zmq

    from controllers.controller import Controller

    ctx = zmq.Context()
    fwd = bus.Forwarder(ep, ctx).start()
    ctrl = Controller(spec, ep, ctx=ctx, lockstep=False)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            ctrl.do_tick(float(int(time.time())))
            for _ in range(20):
                ctrl.pump()
                time.sleep(0.05)
            if ctrl.engine_word > float("-inf"):
                return True
        return False
    finally:
        ctrl.close()
        fwd.stop()
        ctx.destroy(linger=0)


def test_engine_starts_from_a_compiled_network_without_sumo(tmp_path):
    """``lintas compile`` once (with SUMO); then the engine runs from network.json in a process that cannot import
    SUMO, and commands a controller over the real sockets."""
    r = lintas("compile", str(DEMO), "--out", str(tmp_path / "bk"), timeout=300)
    assert r.returncode == 0, r.stderr
    from engine.network import Network

    net = Network.from_json(tmp_path / "bk" / "network.json")
    assert (tmp_path / "bk" / "junctions" / f"{net.junctions[0].id}.json").is_file()
    ep = bus.endpoints("ipc")
    proc = _start(["engine", "--network", str(tmp_path / "bk" / "network.json"), "--policy", "maxpressure",
                   "--clock", "wall", "--bus-in", ep.bus_in, "--bus-out", ep.bus_out, "--commands", ep.commands],
                  blocked=NO_SUMO)
    try:
        assert _commanded(proc, net.junctions[0], ep), proc.stderr.read() if proc.poll() is not None else "silent"
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        bus.ipc_cleanup(ep)
    assert f"lintas engine: {net.n_junctions} junctions, policy maxpressure" in err
    assert "Traceback" not in err


def test_engine_from_a_scenario_compiles_it(tmp_path):
    from simulation.sumo.netcompile import network_for_field

    net = network_for_field(DEMO)
    spec = net.junctions[3]
    write_specs([spec], tmp_path)
    ep = bus.endpoints("ipc")
    proc = _start(["engine", str(DEMO), "--clock", "wall", "--bus-in", ep.bus_in, "--bus-out", ep.bus_out,
                   "--commands", ep.commands])
    try:
        assert _commanded(proc, spec, ep), proc.stderr.read() if proc.poll() is not None else "silent"
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        bus.ipc_cleanup(ep)
    assert f"lintas engine: {net.n_junctions} junctions" in err


@pytest.mark.parametrize("package,args,needle", [
    ("controllers", ["/nonexistent/J1.json"], "J1.json"),
    ("engine", ["engine", "--network", "/nonexistent/network.json"], "network.json"),
])
def test_packages_run_their_own_commands(package, args, needle):
    """``python -m controllers`` / ``python -m engine``: the same commands without the tree (the drill uses them)."""
    r = subprocess.run([sys.executable, "-m", package, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("lintas: error:") and needle in r.stderr and "Traceback" not in r.stderr


def test_the_wrapper_keeps_the_callers_folder(tmp_path):
    """``./lintas simulate scen/x`` from another folder: the path is the caller's (the wrapper used to cd to the
    repository and say "scen/x: scenario path does not exist"); ``./lintas test PATH`` takes the caller's path
    too."""
    from onejunction import one_junction

    one_junction(tmp_path / "scen" / "x", end=60.0)
    r = subprocess.run([str(REPO / "lintas"), "simulate", "scen/x", "-p", "fixed", "--end", "30", "-q",
                        "--json", "out/x.json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "x.json").read_text())["runs"][0]["policy"] == "fixed"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_probe.py").write_text("def test_probe():\n    assert True\n")
    r = subprocess.run([str(REPO / "lintas"), "test", "t/test_probe.py", "-q", "-p", "no:cacheprovider"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
