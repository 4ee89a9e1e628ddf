"""The task list: ``tasks.toml`` in the data root, kept by the lab lead.

```toml
[[tasks]]
name = "pick_place"                 # goes into session.json and every episode's provenance
description = "Pick the cube, place it in the bowl"
target_episodes = 50                # the operator's counter counts kept episodes up to this
episode_s = 20                      # an episode stops by itself after this long
reset_s = 5                         # time to reset the scene before the next episode
failure_reasons = ["dropped cube", "missed bowl"]   # optional: what QA reviewers pick from
```

Problems are one-line :class:`TasksFileError` messages naming the file, the entry and the fix.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rigs.config_file import load_entry_list, safe_name
from teleop.errors import TeleopError

TASKS_FILE = "tasks.toml"

EXAMPLE = (
    '[[tasks]]\nname = "pick_place"\ndescription = "Pick the cube, place it in the bowl"\n'
    "target_episodes = 50\nepisode_s = 20\nreset_s = 5\n"
)


class TasksFileError(TeleopError):
    """``tasks.toml`` is missing or invalid; the message says how to fix it."""


class Task(BaseModel):
    """One demonstration task and its recording plan."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    target_episodes: int = Field(gt=0, le=100_000)
    episode_s: float = Field(gt=0, le=3600)
    reset_s: float = Field(default=0.0, ge=0, le=600)
    failure_reasons: tuple[str, ...] = Field(
        default=(), description="reasons a QA reviewer picks from for a failure label"
    )

    @field_validator("failure_reasons")
    @classmethod
    def _named_reasons(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for reason in v:
            if not reason.strip():
                raise ValueError("an empty failure reason: name each reason a reviewer can pick")
        if len(set(v)) != len(v):
            raise ValueError(f"failure reasons repeat: {list(v)}")
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return safe_name(v)  # names end up in provenance and queries


class _TasksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[Task] = Field(min_length=1)


def load_tasks(data_root: Path) -> list[Task]:
    """The tasks listed in ``<data_root>/tasks.toml``, in file order."""
    return load_entry_list(
        Path(data_root) / TASKS_FILE,
        _TasksFile,
        TasksFileError,
        entries="tasks",
        key="name",
        missing="no task list; ask your lab lead to create it with one [[tasks]] table per "
        "task (name, target_episodes, episode_s, reset_s)",
    )
