"""Where the live view listens: ``--live [HOST:PORT]`` parsed without touching the network.

Only IP literals of this machine (and ``localhost``) are accepted as the host, so parsing never
asks a name resolver anything; whether the address belongs to this machine is found out by
binding to it (:class:`teleop.live.publisher.LivePublisher`), which sends nothing anywhere.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from teleop.errors import TeleopError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
EXAMPLES = "8765, 127.0.0.1:8765, 0.0.0.0:8765 or [::1]:8765"


class LiveViewError(TeleopError):
    """The live view cannot listen where it was asked to; the message says why and what to do."""


@dataclass(frozen=True)
class LiveAddress:
    """A host (an IP literal) and a TCP port; port 0 lets the system pick a free one."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def is_ipv6(self) -> bool:
        """True for an IPv6 host (written in brackets in URLs)."""
        return ":" in self.host

    @property
    def netloc(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The address a Foxglove client connects to: ``ws://host:port``."""
        return f"ws://{self.netloc}"

    def with_port(self, port: int) -> LiveAddress:
        """The same host on ``port`` (the one the system picked for port 0)."""
        return LiveAddress(self.host, port)


def _port(text: str, spec: str) -> int:
    if not text.isdigit():
        raise LiveViewError(
            f"--live {spec!r}: the port must be a number 0-65535; give PORT or HOST:PORT "
            f"(e.g. {EXAMPLES})"
        )
    port = int(text)
    if port > 65535:
        raise LiveViewError(f"--live {spec!r}: port {port} is above 65535; e.g. {EXAMPLES}")
    return port


def _host(text: str, spec: str, *, bracketed: bool) -> str:
    if text.lower() == "localhost" and not bracketed:
        return DEFAULT_HOST
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise LiveViewError(
            f"--live {spec!r}: {text!r} is not an IP address; give an address of this machine "
            "(127.0.0.1 for this machine only, 0.0.0.0 for every interface, or one of its own "
            f"addresses) and a port, e.g. {EXAMPLES}"
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and not bracketed:
        raise LiveViewError(f"--live {spec!r}: write an IPv6 address in brackets, e.g. [::1]:8765")
    if isinstance(ip, ipaddress.IPv4Address) and bracketed:
        raise LiveViewError(f"--live {spec!r}: brackets are for IPv6 only, e.g. 127.0.0.1:8765")
    return str(ip)


def parse_live_address(spec: str | None) -> LiveAddress:
    """Parse ``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``; ``None`` or empty is the default.

    Raises:
        LiveViewError: the text is none of these (one line naming the input and the forms).
    """
    text = (spec or "").strip()
    if not text:
        return LiveAddress()
    if text.isdigit():
        return LiveAddress(DEFAULT_HOST, _port(text, text))
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise LiveViewError(f"--live {text!r}: expected [IPV6]:PORT, e.g. [::1]:8765")
        return LiveAddress(
            _host(text[1:close], text, bracketed=True), _port(text[close + 2 :], text)
        )
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise LiveViewError(f"--live {text!r}: expected PORT or HOST:PORT, e.g. {EXAMPLES}")
    if ":" in host:
        raise LiveViewError(f"--live {text!r}: write an IPv6 address in brackets, e.g. [::1]:8765")
    return LiveAddress(_host(host, text, bracketed=False), _port(port, text))
