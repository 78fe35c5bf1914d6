"""``python -m controllers SPEC ...``: the controller command without the lintas command tree (core install)."""

from controllers.cli import app
from engine.protocol.service import run_commands

run_commands(app, "python -m controllers")
