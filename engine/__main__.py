"""``python -m engine COMMAND ...``: the engine's commands (engine, bus, keys, reset) without the lintas command
tree (core install)."""

from engine.cli import app
from engine.protocol.service import run_commands

run_commands(app, "python -m engine")
