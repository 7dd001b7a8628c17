"""``python -m labelgate.cli``."""

from labelgate.cli import main

main()
