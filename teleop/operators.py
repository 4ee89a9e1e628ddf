"""The operator registry: ``operators.toml`` in the data root, kept by the lab lead.

```toml
[[operators]]
id = "op7"              # what goes into session.json and every episode's provenance
name = "Ada Lovelace"   # what the sign-in screen shows
```

Operators pick themselves from this list instead of typing a name, so one person is always
recorded under one id. Problems are one-line :class:`OperatorsFileError` messages naming the
file, the entry and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rigs.config_file import load_toml
from teleop.errors import TeleopError

OPERATORS_FILE = "operators.toml"

EXAMPLE = '[[operators]]\nid = "op7"\nname = "Ada Lovelace"\n'

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class OperatorsFileError(TeleopError):
    """``operators.toml`` is missing or invalid; the message says how to fix it."""


class Operator(BaseModel):
    """One person who may record."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        # Ids end up in folder names (the session id), so keep them path-safe.
        if not _ID.match(v):
            raise ValueError("use letters, digits, '_', '.', '-' (no spaces)")
        return v

    @property
    def label(self) -> str:
        """``Ada Lovelace (op7)``: what a picker shows."""
        return f"{self.name} ({self.id})"


class _OperatorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operators: list[Operator] = Field(min_length=1)


def load_operators(data_root: Path) -> list[Operator]:
    """The operators listed in ``<data_root>/operators.toml``, in file order."""
    path = Path(data_root) / OPERATORS_FILE
    if not path.is_file():
        raise OperatorsFileError(
            f"{path}: no operator list; ask your lab lead to create it with one "
            f'[[operators]] table per person (id = "op7", name = "Ada Lovelace")'
        )
    parsed = load_toml(path, _OperatorsFile, OperatorsFileError)
    seen: set[str] = set()
    for op in parsed.operators:
        if op.id in seen:
            raise OperatorsFileError(
                f"{path}: operator id {op.id!r} is listed twice; ids must be unique"
            )
        seen.add(op.id)
    return parsed.operators
