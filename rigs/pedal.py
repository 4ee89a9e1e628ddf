"""A serial foot pedal: bytes on a serial port become recording actions.

Some pedals (and home-made Arduino boxes) speak serial instead of pretending to be a keyboard:
each press sends a short token such as ``b"1"``. :class:`SerialPedal` opens the port with
pyserial, reads on its own thread and calls ``on_action(action)`` for every token it knows
(from that thread: a GUI must hand it over to its own thread). Unknown bytes are skipped.

Tokens are matched longest first against what has arrived, so ``b"1"`` and multi-byte tokens
like ``b"START\\n"`` can be mixed; line endings between tokens are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import serial

from rigs.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_BAUD = 9600
DEFAULT_MAPPING: dict[bytes, str] = {b"1": "start_stop", b"2": "keep", b"3": "discard"}
_IGNORED = b"\r\n\t "


class PedalError(UserError, ValueError):
    """A pedal port that cannot be opened or a mapping that cannot be used."""


def parse_port(text: str) -> tuple[str, int]:
    """``PORT`` or ``PORT:BAUD`` (``/dev/ttyUSB0:115200``) -> (port, baud)."""
    port, sep, baud = text.rpartition(":")
    if sep and baud.isdigit() and port:
        return port, int(baud)
    return text, DEFAULT_BAUD


def parse_mapping(text: str) -> dict[bytes, str]:
    """``TOKEN=ACTION,...`` (``1=start_stop,2=keep``); ``\\n``-style escapes are allowed."""
    out: dict[bytes, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        token, sep, action = item.partition("=")
        token = token.strip()  # a space token is written \x20
        if not sep or not token or not action.strip():
            raise PedalError(f"pedal mapping {item!r}: use TOKEN=ACTION, e.g. 1=start_stop")
        out[token.encode().decode("unicode_escape").encode("latin-1")] = action.strip()
    if not out:
        raise PedalError("pedal mapping is empty: use TOKEN=ACTION, e.g. 1=start_stop")
    return out


class SerialPedal:
    """Reads ``port`` on a thread; ``on_action(action)`` for every mapped token received."""

    def __init__(
        self,
        port: str,
        baud: int = DEFAULT_BAUD,
        mapping: Mapping[bytes, str] | Mapping[str, str] | None = None,
        on_action: Callable[[str], None] | None = None,
    ):
        self.port = port
        self.baud = baud
        raw = DEFAULT_MAPPING if mapping is None else mapping
        self.mapping: dict[bytes, str] = {
            (k.encode() if isinstance(k, str) else bytes(k)): v for k, v in raw.items()
        }
        if not self.mapping or any(not k for k in self.mapping):
            raise PedalError("a pedal mapping needs at least one non-empty token")
        self._tokens = sorted(self.mapping, key=len, reverse=True)
        self.on_action = on_action
        self.received: list[str] = []  # actions seen, in order
        self._serial: serial.Serial | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer = b""

    def start(self) -> SerialPedal:
        """Open the port and start the reader thread."""
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0.1)
        except (serial.SerialException, OSError) as exc:
            raise PedalError(
                f"serial pedal {self.port}: cannot open ({exc}); check the cable and that "
                "you are in the dialout group"
            ) from None
        self._thread = threading.Thread(target=self._run, name="serial-pedal", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._serial is not None:
            self._serial.close()
        self._thread = None
        self._serial = None

    def __enter__(self) -> SerialPedal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> bytes:
        """Bytes received that begin a token whose rest has not arrived yet."""
        return self._buffer

    def feed(self, data: bytes) -> list[str]:
        """Decode received bytes into actions (kept across calls for split tokens)."""
        self._buffer += data
        actions: list[str] = []
        longest = len(self._tokens[0])
        while self._buffer:
            for token in self._tokens:
                if self._buffer.startswith(token):
                    actions.append(self.mapping[token])
                    self._buffer = self._buffer[len(token) :]
                    break
            else:
                if any(t.startswith(self._buffer) for t in self._tokens):
                    break  # the start of a token: wait for the rest
                if self._buffer[:1] not in _IGNORED:
                    log.debug("serial pedal: skipping unknown byte %r", self._buffer[:1])
                self._buffer = self._buffer[1:]
        self._buffer = self._buffer[-longest:]
        return actions

    def _run(self) -> None:
        assert self._serial is not None
        while not self._stop.is_set():
            try:
                data = self._serial.read(64)
            except (serial.SerialException, OSError, TypeError) as exc:
                if not self._stop.is_set():
                    log.error("serial pedal %s: read failed (%s); pedal off", self.port, exc)
                return
            if not data:
                continue
            for action in self.feed(data):
                self.received.append(action)
                if self.on_action is not None:
                    try:
                        self.on_action(action)
                    except Exception:  # a bad callback must not kill the pedal
                        log.exception("serial pedal: action %r failed", action)
