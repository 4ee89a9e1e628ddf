"""TOML files validated by pydantic, with one-line errors naming the file, field and problem.

Rig files, and the lab's operators.toml and tasks.toml, all load this way.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple) -> str:
    """``arms[0].joints[2].id`` from a pydantic error location."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def first_error(source: str, exc: ValidationError) -> str:
    """The first validation problem as ``source: field 'x': message (and N more problems)``."""
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    extra = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{source}: field '{field_path(err['loc'])}': {msg}{extra}"


def parse_toml(text: str, model: type[M], source: str, error: type[Exception]) -> M:
    """Validate TOML ``text`` as ``model``; problems raise ``error`` with one line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to be a configuration file; fix it") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(first_error(source, exc)) from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to be a configuration file; fix it") from None


def load_toml(path: Path, model: type[M], error: type[Exception]) -> M:
    """Read and validate a TOML file (the caller checks that it exists, with its own advice)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read it ({exc})") from None
    return parse_toml(text, model, str(path), error)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""Ids and names that end up in folder names (session ids): path-safe, no spaces."""


def safe_name(value: str) -> str:
    """A pydantic validator body: ``value`` if it matches :data:`SAFE_NAME`."""
    if not SAFE_NAME.match(value):
        raise ValueError("use letters, digits, '_', '.', '-' (no spaces)")
    return value


def load_entry_list(
    path: Path,
    model: type[M],
    error: type[Exception],
    *,
    entries: str,
    key: str,
    missing: str,
) -> list[Any]:
    """The ``entries`` list of the TOML file at ``path`` (validated as ``model``), in file
    order; ``missing`` is the advice when the file does not exist, and no two entries may share
    their ``key`` (each problem one ``error`` line)."""
    if not path.is_file():
        raise error(f"{path}: {missing}")
    items: list[Any] = list(getattr(load_toml(path, model, error), entries))
    seen: set[str] = set()
    for item in items:
        value = getattr(item, key)
        if value in seen:
            raise error(f"{path}: {key} {value!r} is listed twice; each must be unique")
        seen.add(value)
    return items
