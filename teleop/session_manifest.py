"""``session.json`` as typed records: the session's manifest and one entry per episode.

The file format is unchanged (``teleop-session/1``): fields a record does not have are left
out, and fields this version does not know (written by a newer one) are kept on rewrite.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from rigs.config_file import field_path
from teleop.errors import DataRootError
from teleop.recording.quality import Quality

SESSION_FORMAT: Final = "teleop-session/1"

EpisodeStatus = Literal["recorded", "kept", "discarded", "partial", "recovered"]
"""recorded: finished, the operator has not decided yet; kept / discarded: decided (a
discarded file is deleted when the session closes); partial: a write failed, the file is a
recoverable ``.partial``; recovered: rebuilt from a partial by ``teleop recover``."""


class EpisodeEntry(BaseModel):
    """One episode of a session, as session.json lists it."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    index: int
    file: str
    status: EpisodeStatus
    start_utc: str | None = None
    duration_s: float | None = None
    bytes: int | None = None
    sha256: str | None = None
    quality: Quality | None = None
    error: str | None = None
    """Why the write failed (a partial episode)."""
    recovered_from: str | None = None
    repaired_from: str | None = None
    deleted_at_close: bool | None = None
    operator_mark: Literal["success", "failure"] | None = None
    operator_mark_utc: str | None = None

    @property
    def flags(self) -> list[str]:
        return list(self.quality.flags) if self.quality is not None else []


class SessionManifest(BaseModel):
    """A session: who recorded what on which rig, when, and its episodes."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    format: Literal["teleop-session/1"] = SESSION_FORMAT
    session_id: str
    operator: str
    task: str
    rig_id: str
    rig_sha256: str
    host: str
    software_version: str
    started_utc: str
    closed_utc: str | None = None
    episodes: list[EpisodeEntry] = []

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values; ``closed_utc`` is always present (null while open)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["closed_utc"] = self.closed_utc
        return data

    @classmethod
    def parse(cls, text: str | bytes, source: str) -> SessionManifest:
        """A manifest from session.json's text.

        Raises:
            DataRootError: one line naming ``source`` and the first problem.
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise DataRootError(
                    f"{source}: unreadable session manifest (not JSON: {exc.errors()[0]['msg']})"
                ) from None
            if any(e["loc"] == ("format",) for e in exc.errors()):
                raise DataRootError(f"{source}: not a teleop session manifest") from None
            err = exc.errors()[0]
            raise DataRootError(
                f"{source}: unreadable session manifest (field '{field_path(err['loc'])}': "
                f"{err['msg']}); fix or restore the file"
            ) from None


__all__ = ["SESSION_FORMAT", "EpisodeEntry", "EpisodeStatus", "SessionManifest"]
