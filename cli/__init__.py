"""The ``lintas`` command tree: a thin root above every package, composing the commands each package owns.

Commands live beside their package (``engine/cli.py``, ``controllers/cli.py``, ``simulation/cli.py``,
``benchmarks/cli.py``). The root imports a package's commands only when one of them runs, so that
``lintas controller --help`` loads neither SUMO nor the policy kernels, and a command of a package that is
not installed (``lintas simulate`` without the ``[sim]`` extra) says what to install. Nothing imports this
package.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import typer
import typer.core
import typer.main

from engine.protocol.service import CommandError

__all__ = ["COMMANDS", "app", "main"]


@dataclass(frozen=True)
class Entry:
    """One command of the tree: the package module that defines it, its name there (None: the whole typer app,
    a group of its own), and the one line ``lintas --help`` shows (the first sentence of its own help)."""

    module: str
    name: str | None
    summary: str


COMMANDS: dict[str, Entry] = {
    "demo": Entry("simulation.cli", "demo", "The main job: closed-loop comparison on the shipped demo city (Bunda "
                  "Kota)."),
    "simulate": Entry("simulation.cli", "simulate", "Run SUMO closed-loop comparisons."),
    "compile": Entry("simulation.cli", "compile", "Compile a scenario's traffic lights into the engine's arrays and "
                     "junction specs."),
    "engine": Entry("engine.cli", "engine", "Run the engine: detector readings in, commands out to every "
                    "controller."),
    "controller": Entry("controllers.cli", "controller", "Run one intersection controller."),
    "conformance": Entry("controllers.conformance.cli", "conformance", "Check a controller against "
                         "docs/protocol.md: plays the engine's side (and the bus's) through scripted cases and prints "
                         "one pass/fail line per requirement (C1-C28); exits 1 on any failure."),
    "bus": Entry("engine.cli", "bus", "Run the bus forwarder (XSUB/XPUB)."),
    "keys": Entry("engine.cli", "keys", "Create CURVE key pairs for --keys: NAME.key (public) and NAME.key_secret "
                  "(0600) per name, public keys copied to DIR/allowed/ (the allow-list); operators' also to "
                  "DIR/operators/ (who may reset faults)."),
    "reset": Entry("engine.cli", "reset", "Ask the engine to clear a junction's latched fault (it sends the "
                   "controller an authenticated reset and waits until the controller reports it cleared)."),
    "check-tls": Entry("simulation.cli", "check-tls", "Check the signal states SUMO showed (its SaveTLSStates "
                       "output) against the junctions' conflicts, yellow and minimum green; exits 1 on any "
                       "violation."),
    "drill": Entry("simulation.cli", "drill", "Fault-injection drill over tcp with separate processes and CURVE "
                   "keys: kill -9 the engine, restart it, kill a controller, let a keyless process publish."),
    "soak": Entry("simulation.cli", "soak", "Soak the controllers: random command sequences, garbage bytes, wrong "
                  "junctions, huge and negative numbers, on every junction of the given scenarios; the shown "
                  "signals are checked independently."),
    "zoo": Entry("simulation.cli", "zoo", "Write the scenario zoo: small SUMO scenarios made by SUMO's own tools, "
                 "varying what real scenarios vary."),
    "api": Entry("transit_api.cli", "api", "Serve the transit API (stops, routes, next arrivals from a static GTFS "
                 "feed) on uvicorn."),
    "vision": Entry("vision.cli", None, "Vision: vehicle detection, tracking and counting from cameras."),
    "camera": Entry("vision.cli", "camera", "Run a camera worker: counts vehicles from a video, an image folder or an "
                    "RTSP/HTTP stream and publishes its zones' readings on the bus."),
    "bench": Entry("benchmarks.cli", None, "Benchmarks (figures and ratios measured side by side; JSON under "
                   "benchmarks/results/)."),
}

#: the third-party modules that only the optional installs bring
_EXTRA_MODULES = {"sumo": "sim", "sumolib": "sim", "libsumo": "sim", "traci": "sim", "matplotlib": "sim",
                  "fastapi": "api", "uvicorn": "api", "starlette": "api", "cv2": "vision", "onnxruntime": "vision"}


def _missing_install(exc: ModuleNotFoundError, what: str) -> Exception:
    """The error to show for a module that an optional install brings (else ``exc`` itself)."""
    extra = _EXTRA_MODULES.get((exc.name or "").split(".")[0])
    if extra is None:
        return exc
    return CommandError(f"{what} needs the [{extra}] install ({exc.name} is missing): pip install 'lintas[{extra}]'")


def load(name: str) -> typer.core.TyperCommand | typer.core.TyperGroup:
    """The click command ``name`` of the tree, importing the package that defines it (and nothing else)."""
    entry = COMMANDS[name]
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        raise _missing_install(exc, f"'lintas {name}'") from None
    cmd = typer.main.get_command(module.app)
    if entry.name is not None and isinstance(cmd, typer.core.TyperGroup):
        sub = cmd.commands.get(entry.name)
        if sub is None:
            raise LookupError(f"{entry.module} defines no command {entry.name!r}")
        cmd = sub
    cmd.name = name
    return cmd


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists every command from :data:`COMMANDS` without importing any, and imports one's
    package only when it is asked for."""

    _listing = False

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in COMMANDS:
            return None
        if self._listing:  # `lintas --help`: the summary only, from the registry
            return typer.core.TyperCommand(cmd_name, help=COMMANDS[cmd_name].summary)
        return load(cmd_name)

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx):
        """Run the command; a :class:`CommandError` is one line on stderr and exit code 2."""
        try:
            try:
                return super().invoke(ctx)
            except ModuleNotFoundError as exc:
                what = f"'lintas {ctx.invoked_subcommand}'" if ctx.invoked_subcommand else "this command"
                raise _missing_install(exc, what) from None
        except CommandError as exc:
            typer.echo(f"lintas: error: {exc}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Lintas: real-time traffic signal control over ZeroMQ, validated in SUMO.\n\n"
    "Example: lintas simulate scenarios/bunda_kota --policy sumo-static --policy maxpressure --seeds 3 --report out/",
)


@app.callback()
def _root() -> None:
    """(the root takes no options of its own)"""


def _network_from_scenario(path: Path):
    """For ``lintas engine SCENARIO``: compile the scenario with SUMO (the [sim] install), as the field sees it."""
    try:
        from simulation.sumo.netcompile import network_for_field
        from simulation.sumo.scenario import ScenarioError
    except ModuleNotFoundError as exc:
        raise CommandError(f"{path}: compiling a scenario needs the [sim] install ({exc.name} is missing); "
                           f"pass --network FILE (lintas compile writes it) to start without SUMO") from None
    try:
        return network_for_field(path)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None


def _camera_feed():
    """For ``lintas simulate --cameras``: what renders the cameras' frames, detects, tracks and counts (vision/, the
    [vision] install), handed to the runs (simulation/ may not import vision/)."""
    try:
        from vision.detect import SHIPPED_ONNX
        from vision.insim import loop_cameras
    except ModuleNotFoundError as exc:
        raise _missing_install(exc, "--cameras") from None
    if not SHIPPED_ONNX.is_file():  # said before any run starts, not once per run
        raise CommandError(f"--cameras: the detector's model is missing ({SHIPPED_ONNX})")
    return loop_cameras


def main() -> None:
    """The ``lintas`` entry point."""
    logging.basicConfig(level=os.environ.get("LINTAS_LOG", "WARNING"), format="%(asctime)s %(name)s %(message)s")
    app(prog_name="lintas", obj={"network_from_scenario": _network_from_scenario, "camera_feed": _camera_feed})
