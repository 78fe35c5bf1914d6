"""``lintas conformance``: check a controller (any vendor's) against docs/protocol.md, from its endpoints and its
junction spec. It needs the wire protocol and the kit, nothing else (the core install)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Check a controller against the protocol.")


@app.command(help="Check a controller against docs/protocol.md: plays the engine's side (and the bus's) through "
             "scripted cases and prints one pass/fail line per requirement (C1-C28); exits 1 on any failure. "
             "Example: lintas conformance out/junctions/J1.json --bus-in tcp://127.0.0.1:5555 --bus-out "
             "tcp://127.0.0.1:5556 --commands tcp://127.0.0.1:5557 (start the controller with the same endpoints "
             "and --clock wall)")
def conformance(
    spec_file: Annotated[Path, typer.Argument(help="The controller's junction spec JSON (lintas compile writes them)")],
    bus_in: Annotated[str, typer.Option(help="The bus's publisher side (the kit binds it)")] = "tcp://127.0.0.1:5555",
    bus_out: Annotated[str, typer.Option(help="The bus's subscriber side (the kit binds it)")] = "tcp://127.0.0.1:5556",
    commands: Annotated[str, typer.Option(help="The engine's command endpoint (the kit binds it)")] =
    "tcp://127.0.0.1:5557",
    keys: Annotated[Path | None, typer.Option("--keys", help="Key directory (lintas keys DIR): the kit uses the "
                                                             "engine's and the bus's pairs")] = None,
    startup_timeout: Annotated[float, typer.Option(help="Seconds to wait for the controller's first state")] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Name each case on stderr as it runs")] = False,
) -> None:
    import zmq

    from controllers.conformance.kit import Kit, KitError
    from engine.protocol import bus as b
    from engine.protocol.junction import SpecError, read_spec
    from engine.protocol.service import load_security

    try:
        spec = read_spec(spec_file)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    ctx = zmq.Context.instance()
    sec = load_security(keys, "engine", ctx)
    progress = (lambda s: print(f"conformance: {s}", file=sys.stderr, flush=True)) if verbose else None
    try:
        kit = Kit(spec, b.Endpoints(bus_in, bus_out, commands), security=sec, startup_timeout=startup_timeout,
                  progress=progress)
        typer.echo(f"lintas conformance: junction {spec.id} ({spec.n_phases} green phases, {spec.n_links} links) "
                   f"at {commands}")
        results = kit.run()
    except KitError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if sec is not None:
            sec.close()
    for r in results:
        typer.echo(r.line())
    failed = [r.req for r in results if not r.ok]
    typer.echo(f"{len(results) - len(failed)} of {len(results)} requirements passed"
               + (f"; failed: {', '.join(failed)}" if failed else ""))
    raise typer.Exit(1 if failed else 0)
