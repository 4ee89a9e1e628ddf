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

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rigs.config_file import load_entry_list, safe_name
from teleop.errors import TeleopError

OPERATORS_FILE = "operators.toml"

EXAMPLE = '[[operators]]\nid = "op7"\nname = "Ada Lovelace"\n'


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
        return safe_name(v)  # ids end up in folder names (the session id)

    @property
    def label(self) -> str:
        """``Ada Lovelace (op7)``: what a picker shows."""
        return f"{self.name} ({self.id})"


class _OperatorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operators: list[Operator] = Field(min_length=1)


def load_operators(data_root: Path) -> list[Operator]:
    """The operators listed in ``<data_root>/operators.toml``, in file order."""
    return load_entry_list(
        Path(data_root) / OPERATORS_FILE,
        _OperatorsFile,
        OperatorsFileError,
        entries="operators",
        key="id",
        missing="no operator list; ask your lab lead to create it with one [[operators]] "
        'table per person (id = "op7", name = "Ada Lovelace")',
    )
