"""SUMO's command line for a run: the options Lintas sets, and the user's own (``--sumo-arg``) on top.

A user's option wins over Lintas' default of the same name (``--time-to-teleport 300``, ``--step-length
0.5``, ``--no-warnings false``, ...). Additional files are merged: the scenario's, Lintas' detectors and the
user's all load. The options a run cannot do without, or that the user sets elsewhere, are refused before any
run starts, with the reason (:func:`check_user_args`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulation.sumo.scenario import ScenarioError

__all__ = ["REFUSED", "check_user_args", "merge_additional", "option_names", "sumo_command"]

# SUMO's one-letter abbreviations of the options that matter here
_SHORT = {"c": "configuration-file", "n": "net-file", "r": "route-files", "a": "additional-files", "b": "begin",
          "e": "end", "s": "route-steps"}

#: options a run must set itself, and what to do instead
REFUSED: dict[str, str] = {
    "configuration-file": "the scenario is lintas simulate's SCENARIO argument",
    "net-file": "name the net in the scenario's .sumocfg",
    "route-files": "name the route files in the scenario's .sumocfg (the delay metric reads them)",
    "begin": "set begin in the scenario's .sumocfg",
    "end": "use lintas simulate --end",
    "seed": "use lintas simulate --seeds (each run gets its own seed)",
    "tripinfo-output": "Lintas reads each run's tripinfo from its own folder (choose where with --work-dir)",
    "statistic-output": "Lintas reads each run's statistics from its own folder (choose where with --work-dir)",
    "tripinfo-output.write-unfinished": "the delay metric needs the vehicles still driving at the end",
}


def _name(token: str) -> str | None:
    """The option a command-line token names (``--end``, ``--end=5``, ``-e``), or None for a value."""
    if not token.startswith("-") or len(token) < 2:
        return None
    if token[1].isdigit() or token[1] == ".":  # a negative number is a value
        return None
    name = token.lstrip("-").split("=", 1)[0]
    if not token.startswith("--"):
        name = _SHORT.get(name, name)
    return name


def option_names(args: Sequence[str]) -> set[str]:
    """The long names of the options in ``args``."""
    return {n for n in map(_name, args) if n}


def check_user_args(args: Sequence[str]) -> None:
    """:class:`ScenarioError` naming the first ``--sumo-arg`` option a run cannot take, and why."""
    for token in args:
        name = _name(token)
        if name in REFUSED:
            raise ScenarioError(f"--sumo-arg {token}: Lintas sets --{name} itself; {REFUSED[name]}")


def _split(args: Sequence[str]) -> list[list[str]]:
    """``args`` as [option, value...] groups (a token that is not an option belongs to the one before)."""
    groups: list[list[str]] = []
    for token in args:
        if _name(token) is None and groups:
            groups[-1].append(token)
        else:
            groups.append([token])
    return groups


def sumo_command(defaults: Sequence[str], user: Sequence[str], additional: Sequence[Path]) -> list[str]:
    """Lintas' ``defaults`` without the options the user sets again, then the user's options, with every
    additional file (``additional``, then any the user names) in one ``--additional-files``."""
    mine = option_names(user)
    kept = [tok for grp in _split(defaults) if _name(grp[0]) not in mine for tok in grp]
    return merge_additional([*kept, *user], list(additional))


def merge_additional(args: list[str], extra: list[Path]) -> list[str]:
    """Fold Lintas' additional files into ``-a/--additional-files`` (user ones kept)."""
    out: list[str] = []
    files = [str(p) for p in extra]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-a", "--additional-files") and i + 1 < len(args):
            files.extend(x for x in args[i + 1].split(",") if x)
            i += 2
            continue
        if a.startswith("--additional-files="):
            files.extend(x for x in a.split("=", 1)[1].split(",") if x)
            i += 1
            continue
        out.append(a)
        i += 1
    if files:
        out += ["--additional-files", ",".join(files)]
    return out
