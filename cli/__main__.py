"""``python -m cli ...``: the lintas command tree (the same as the ``lintas`` script)."""

from cli import main

main()
