"""The commands the README and the docs show exist, with the options they show (docs that show code are tested)."""

from __future__ import annotations

import re
import shlex

import pytest

import cli
from simulation.experiments.catalog import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _shown_commands() -> list[tuple[str, list[str]]]:
    """(doc name, argv after `lintas`) of every `./lintas ...` / `lintas ...` line in the docs' bash blocks."""
    out = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.DOTALL):
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                line = line.split("  #")[0].strip()
                m = re.match(r"^(?:\./)?lintas\s+(.*)$", line)
                if m:
                    out.append((doc.name, shlex.split(m.group(1).replace("...", ""))))
    return out


SHOWN = _shown_commands()


def _options(cmd) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def test_the_docs_show_commands():
    assert len(SHOWN) > 20 and {a[0] for _doc, a in SHOWN} >= {"demo", "simulate", "engine", "controller"}


@pytest.mark.parametrize("doc,argv", SHOWN, ids=[f"{d}:{' '.join(a[:2])}" for d, a in SHOWN])
def test_each_shown_command_and_option_exists(doc, argv):
    name = argv[0]
    if name == "test":  # ./lintas test: pytest
        return
    assert name in cli.COMMANDS, f"{doc} shows `lintas {name}`, which does not exist"
    cmd = cli.load(name)
    rest = argv[1:]
    if hasattr(cmd, "commands") and rest and rest[0].startswith("--"):  # the group's own option (bench --quick)
        pass
    elif hasattr(cmd, "commands"):  # a group (bench): the sub-command comes next
        assert rest and rest[0] in cmd.commands, f"{doc}: `lintas {name} {' '.join(rest[:1])}` does not exist"
        cmd = cmd.commands[rest[0]]
        rest = rest[1:]
    known = _options(cmd)
    for tok in rest:
        if tok.startswith("--"):
            opt = tok.split("=", 1)[0]
            assert opt in known, f"{doc}: `lintas {name}` has no option {opt} (it has {sorted(known)})"
