"""Copy an episode's records into a new, complete, indexed MCAP file.

``teleop recover`` (a truncated file) and ``teleop repair`` (a file whose schemas are in the
old form) both read an episode record by record and write what they keep into a new file
next to it, never touching the original. This module holds that common part: the copy
(schemas, channels, messages with their times and sequence numbers, metadata, attachments,
in file order), the writer settings of a recorded episode, and publishing the new file under
its final name only once it is complete and durable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mcap.records import Attachment, Channel, Header, McapRecord, Message, Metadata, Schema

from rigs.durable import fsync_dir
from teleop.episode.schemas import PROFILE
from teleop.episode.writer import episode_mcap_writer

SchemaTransform = Callable[[str, str, bytes], bytes]
"""``(name, encoding, data) -> data``: what to write as a schema's definition."""


def _same(_name: str, _encoding: str, data: bytes) -> bytes:
    return data


class EpisodeCopier:
    """Writes the records handed to :meth:`add` into ``out``, renumbering ids as needed.

    A channel is written when its first message arrives, so a channel whose messages were all
    lost does not appear in the copy. ``library_note`` is appended to the header's library
    string (e.g. ``"recovered by teleop 0.2.0"``).
    """

    def __init__(
        self, out: IO[bytes], library_note: str, schema_transform: SchemaTransform = _same
    ):
        self._writer = episode_mcap_writer(out)
        self._note = library_note
        self._transform = schema_transform
        self._started = False
        self._schemas: dict[int, int] = {}  # id in the source -> id in the copy
        self._channels: dict[int, int] = {}
        self._pending_channels: dict[int, Channel] = {}
        self.messages = 0
        self.first_log_time_ns: int | None = None
        self.last_log_time_ns: int | None = None
        self.metadata_names: list[str] = []
        self.attachment_names: list[str] = []
        self.schemas_changed = 0

    def start(self, profile: str = PROFILE, library: str = "unknown") -> None:
        """Write the header (once; later calls do nothing)."""
        if not self._started:
            self._writer.start(profile=profile, library=f"{library} ({self._note})")
            self._started = True

    def add(self, rec: McapRecord) -> None:
        """Copy one record; records of other kinds (indexes, summary) are rebuilt, not copied."""
        if isinstance(rec, Header):
            self.start(rec.profile, rec.library)
        elif isinstance(rec, Schema):
            if rec.id in self._schemas:
                return  # the summary section repeats the schemas of the data section
            self.start()
            data = self._transform(rec.name, rec.encoding, rec.data)
            self.schemas_changed += data != rec.data
            self._schemas[rec.id] = self._writer.register_schema(rec.name, rec.encoding, data)
        elif isinstance(rec, Channel):
            self._pending_channels[rec.id] = rec
        elif isinstance(rec, Message):
            self._add_message(rec)
        elif isinstance(rec, Metadata):
            self.start()
            self._writer.add_metadata(rec.name, rec.metadata)
            self.metadata_names.append(rec.name)
        elif isinstance(rec, Attachment):
            self.start()
            self._writer.add_attachment(
                rec.create_time, rec.log_time, rec.name, rec.media_type, rec.data
            )
            self.attachment_names.append(rec.name)

    def _add_message(self, rec: Message) -> None:
        ch = self._channels.get(rec.channel_id)
        if ch is None:
            c = self._pending_channels.get(rec.channel_id)
            if c is None:
                return  # a message whose channel record was lost cannot be decoded
            ch = self._writer.register_channel(
                c.topic, c.message_encoding, self._schemas.get(c.schema_id, 0), c.metadata
            )
            self._channels[rec.channel_id] = ch
        self._writer.add_message(ch, rec.log_time, rec.data, rec.publish_time, rec.sequence)
        self.messages += 1
        t = rec.log_time
        self.first_log_time_ns = (
            t if self.first_log_time_ns is None else min(self.first_log_time_ns, t)
        )
        self.last_log_time_ns = (
            t if self.last_log_time_ns is None else max(self.last_log_time_ns, t)
        )

    def finish(self, name: str, record: dict[str, str]) -> None:
        """Add a metadata record saying what was done (``recovery``, ``repair``) and write
        the summary and indexes."""
        self.start()
        self._writer.add_metadata(name, record)
        self._writer.finish()


@contextmanager
def new_episode_file(output: Path) -> Iterator[IO[bytes]]:
    """Write to a hidden temporary name beside ``output``; on success fsync it and rename it
    to ``output`` (never replacing an existing file); on failure remove it."""
    tmp = output.with_name(f".{output.name}.writing")
    try:
        with open(tmp, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        # link() fails if output appeared meanwhile, where rename() would replace it.
        os.link(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(output.parent)
