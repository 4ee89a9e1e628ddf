"""argparse for the CLI: a parser whose errors are one line, numbers that are finite and in
range, identities that are not empty. A bad value is refused while the arguments are parsed,
before anything is opened."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, ``PROG: error: MESSAGE (see PROG --help)``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: bool = False,
    integer: bool = False,
) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``above``); an int with ``integer``."""
    if above:
        low = f"above {lo:g}"
    elif lo is not None:
        low = f"at least {lo:g}"
    else:
        low = ""
    high = f"at most {hi:g}" if hi is not None else ""
    kind = "a whole number" if integer else "a number"
    wanted = " and ".join(p for p in (low, high) if p)
    expect = f"{kind} {wanted}".strip()

    def parse(text: str) -> float:
        try:
            value: float = int(text, 10) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {expect}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite; give {expect}")
        if lo is not None and (value <= lo if above else value < lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {expect}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {expect}")
        return value

    return parse


def identity(what: str) -> Callable[[str], str]:
    """A name for provenance (operator, task, reviewer): not empty, no control characters."""

    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            raise argparse.ArgumentTypeError(
                f"an empty {what} is not allowed: every episode names its {what}"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise argparse.ArgumentTypeError(f"{what} {text!r} contains control characters")
        return value

    return parse


SEED = number(0, 2**32 - 1, integer=True)
"""The virtual rig's scripted-operator seed."""
