"""The ``teleop`` command line: argument parsing and printing only.

Each module here turns its subcommands' arguments into calls of the engine (``teleop.recording``,
``teleop.calibrating``, ``teleop.control.replay``, ``teleop.doctor``, ``teleop.export``, …) and
prints what comes back. Nothing outside this package imports it (an import-linter contract).
"""

from teleop.cli.main import main

__all__ = ["main"]
