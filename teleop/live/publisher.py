"""LivePublisher: the episode's messages, as written, on a Foxglove WebSocket server.

The episode writer calls :meth:`LivePublisher.tap` after writing each message (see
``teleop.episode.writer.MessageTap``) with the topic, type, log time and the exact CDR bytes it
wrote. The tap decides (camera throttle), appends to a bounded queue and returns: it never
blocks, never raises and never encodes anything. One publisher thread empties the queue into
the Foxglove SDK's channels (``channel.log`` copies the bytes into each subscribed client's
outbox and returns). A queue that is full drops the message and counts it; a client that reads
too slowly loses the oldest messages of its own outbox inside the SDK (``message_backlog_size``)
and nobody else notices. The recording never waits on any of it.

The server has its own ``foxglove.Context``: only what this publisher logs reaches it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import foxglove

from teleop.episode.schemas import MESSAGE_ENCODING, SCHEMA_ENCODING, message_definition
from teleop.live.address import LiveAddress, LiveViewError
from teleop.live.throttle import CameraThrottle, camera_of

log = logging.getLogger(__name__)

DEFAULT_CAMERA_FPS = 10.0
QUEUE_MAX = 512
"""Messages waiting for the publisher thread before new ones are dropped (about 1 s of a
bimanual rig's joint states, commands and throttled frames)."""
QUEUE_MAX_BYTES = 32 * 1024 * 1024
"""Bytes waiting for the publisher thread before new messages are dropped."""
CLIENT_BACKLOG = 1024
"""Messages the SDK holds per client; a client that falls this far behind loses the oldest."""
POLL_S = 0.02
STOP_WAIT_S = 2.0


@dataclass(frozen=True)
class LiveStats:
    """A snapshot of a live view's counters (messages, not bytes)."""

    url: str
    camera_fps: float
    published: int
    """Handed to the server (every client subscribed to the topic gets it)."""
    throttled: int
    """Camera messages left out to keep each camera at ``camera_fps``."""
    dropped: int
    """Left out because the queue to the publisher thread was full."""
    queued: int
    clients: int
    """Clients subscribed to at least one topic now."""
    max_clients: int
    errors: int
    """Messages that raised in the tap or in the SDK (logged once; never reach the writer)."""

    def describe(self) -> str:
        """One line for the CLI and the GUI's health bar."""
        watching = f"{self.clients} client{'s' * (self.clients != 1)} watching"
        line = (
            f"live view {self.url}: {watching} (at most {self.max_clients}), "
            f"{self.published} messages published, {self.throttled} camera messages throttled "
            f"to {self.camera_fps:g} fps, {self.dropped} dropped"
        )
        return line + (f", {self.errors} errors" if self.errors else "")


class _Listener(foxglove.ServerListener):
    """The SDK's ServerListener: who is subscribed to what (called on the SDK's threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[int, set[int]] = {}
        self.max_clients = 0

    def on_subscribe(self, client: Any, channel: Any) -> None:
        with self._lock:
            self._subscriptions.setdefault(client.id, set()).add(channel.id)
            self.max_clients = max(self.max_clients, len(self._subscriptions))
        log.info("live view: client %s subscribed to %s", client.id, channel.topic)

    def on_unsubscribe(self, client: Any, channel: Any) -> None:
        with self._lock:
            channels = self._subscriptions.get(client.id)
            if channels is not None:
                channels.discard(channel.id)
                if not channels:
                    del self._subscriptions[client.id]
        log.info("live view: client %s unsubscribed from %s", client.id, channel.topic)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._subscriptions)


def bind_error(address: LiveAddress, exc: BaseException) -> LiveViewError:
    """The one line for a server that could not listen on ``address``."""
    text = str(exc)
    match = re.search(r"os error (\d+)", text)
    code = int(match.group(1)) if match else None
    where = address.netloc
    if code == errno.EADDRINUSE:
        return LiveViewError(
            f"live view: {where} is already in use (another live view or program listens "
            f"there); pick another port, e.g. --live {address.with_port(address.port + 1).netloc}"
            if address.port < 65535
            else f"live view: {where} is already in use; pick another port"
        )
    if code == errno.EADDRNOTAVAIL:
        return LiveViewError(
            f"live view: cannot listen on {where}: {address.host} is not an address of this "
            "machine; use 127.0.0.1 (this machine only, the default), 0.0.0.0 (every "
            "interface) or one of this machine's own addresses"
        )
    if code == errno.EACCES:
        return LiveViewError(
            f"live view: cannot listen on {where}: ports below 1024 need root; use a port "
            "from 1024 up, e.g. 8765"
        )
    detail = text.removeprefix("FoxgloveError: ").strip() or type(exc).__name__
    return LiveViewError(f"live view: cannot listen on {where}: {detail}")


class LivePublisher:
    """A Foxglove WebSocket server fed by an episode writer's tap; one per recording session.

    Construct, :meth:`start` (binds; raises :class:`LiveViewError` when it cannot), hand
    :meth:`tap` to the episode writers, and :meth:`stop` at the end of the session. The tap
    works before :meth:`start` too (it queues, and drops once the queue is full), which is how
    the throttle and the drop counting are tested without a network.

    Args:
        address: where to listen (default 127.0.0.1:8765).
        camera_fps: per camera, the most frames a second passed on (image, depth and
            camera_info of one frame pass together); joint states, commands, diagnostics and
            events always pass.
        queue_max, queue_max_bytes: bounds of the queue between the tap and the publisher
            thread; a message that finds either reached is dropped and counted.
        client_backlog: messages the SDK holds per client before it drops that client's oldest.
    """

    def __init__(
        self,
        address: LiveAddress | None = None,
        *,
        camera_fps: float = DEFAULT_CAMERA_FPS,
        queue_max: int = QUEUE_MAX,
        queue_max_bytes: int = QUEUE_MAX_BYTES,
        client_backlog: int = CLIENT_BACKLOG,
        name: str = "teleop",
    ):
        self.address = address or LiveAddress()
        self.name = name
        self._throttle = CameraThrottle(camera_fps)
        self._queue_max = queue_max
        self._queue_max_bytes = queue_max_bytes
        self._client_backlog = client_backlog
        self._queue: deque[tuple[str, str, int, bytes | bytearray]] = deque()
        # Each counter has one writing thread: the tap's (writer thread) or the publisher's.
        self._bytes_in = 0
        self._bytes_out = 0
        self._throttled = 0
        self._dropped = 0
        self._tap_errors = 0
        self._published = 0
        self._publish_errors = 0
        self._channels: dict[str, Any] = {}
        self._listener = _Listener()
        self._context: Any = None
        self._server: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-publisher", daemon=True)
        self._started = False
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``ws://host:port`` (the port the system picked, once started on port 0)."""
        return self.address.url

    @property
    def running(self) -> bool:
        """Started and not yet stopped."""
        return self._started and not self._stopped

    def start(self) -> LivePublisher:
        """Bind and start the server and the publisher thread.

        Raises:
            LiveViewError: the address cannot be listened on (in use, not this machine's,
                privileged port); nothing is left running.
        """
        if self._started:
            raise RuntimeError("a LivePublisher starts once")
        self._context = foxglove.Context()
        host = f"[{self.address.host}]" if self.address.is_ipv6 else self.address.host
        try:
            self._server = foxglove.start_server(
                name=self.name,
                host=host,
                port=self.address.port,
                context=self._context,
                server_listener=self._listener,
                message_backlog_size=self._client_backlog,
            )
        except Exception as exc:  # the SDK raises RuntimeError("FoxgloveError: ...")
            raise bind_error(self.address, exc) from None
        self.address = self.address.with_port(self._server.port)
        self._started = True
        self._thread.start()
        log.info("live view listening on %s", self.url)
        return self

    def stop(self) -> LiveStats:
        """Stop the publisher thread and the server; returns the final counters.

        Queued messages are published first. Safe to call more than once, and without
        :meth:`start`. Never waits more than a few seconds, even on a client that stopped
        reading (see :meth:`_stop_server`).
        """
        if self._stopped:
            return self.stats()
        self._stopped = True
        self._stop.set()
        if self._started:
            self._thread.join(STOP_WAIT_S)
            for channel in list(self._channels.values()):
                try:
                    channel.close()
                except Exception as exc:  # closing is best effort: the server goes next
                    log.debug("live view: closing a channel failed: %s", exc)
            self._stop_server()
        stats = self.stats()
        log.info("%s", stats.describe())
        return stats

    def __enter__(self) -> LivePublisher:
        return self.start() if not self._started else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the writer's side ------------------------------------------------------------------
    def tap(self, topic: str, type_name: str, log_time_ns: int, data: bytes | bytearray) -> None:
        """A :data:`teleop.episode.writer.MessageTap`: called on the episode writer's thread.

        Decides, queues and returns; never blocks and never raises.
        """
        try:
            camera = camera_of(topic)
            if camera is not None and not self._throttle.passes(camera, log_time_ns):
                self._throttled += 1
                return
            if self._stopped:
                return
            size = len(data)
            queued = self._bytes_in - self._bytes_out
            if len(self._queue) >= self._queue_max or queued + size > self._queue_max_bytes:
                self._dropped += 1
                return
            self._bytes_in += size
            self._queue.append((topic, type_name, log_time_ns, data))
        except Exception:  # the writer thread must never see it
            self._tap_errors += 1
            if self._tap_errors == 1:
                log.exception("live view: the tap failed (counted; recording goes on)")

    # -- counters -----------------------------------------------------------------------------
    def stats(self) -> LiveStats:
        """The counters now (any thread; reads only)."""
        return LiveStats(
            url=self.url,
            camera_fps=self._throttle.fps,
            published=self._published,
            throttled=self._throttled,
            dropped=self._dropped,
            queued=len(self._queue),
            clients=self._listener.clients,
            max_clients=self._listener.max_clients,
            errors=self._tap_errors + self._publish_errors,
        )

    def diagnostic_values(self) -> dict[str, str]:
        """The counters as ``/diagnostics`` key/values."""
        s = self.stats()
        return {
            "url": s.url,
            "camera_fps": f"{s.camera_fps:g}",
            "clients": str(s.clients),
            "published": str(s.published),
            "throttled": str(s.throttled),
            "dropped": str(s.dropped),
            "queued": str(s.queued),
            "errors": str(s.errors),
        }

    # -- the publisher thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            # Polled rather than woken per message: the tap then costs the writer one append.
            stopping = self._stop.wait(POLL_S)
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            topic, type_name, log_time_ns, data = queue.popleft()
            self._bytes_out += len(data)
            try:
                channel = self._channels.get(topic)
                if channel is None:
                    channel = self._channels[topic] = self._channel(topic, type_name)
                # The SDK takes bytes only; joint states and events come as bytearray (small).
                channel.log(data if type(data) is bytes else bytes(data), log_time=log_time_ns)
                self._published += 1
            except Exception:
                self._publish_errors += 1
                if self._publish_errors == 1:
                    log.exception("live view: publishing %s failed (counted)", topic)

    def _channel(self, topic: str, type_name: str) -> Any:
        schema = foxglove.Schema(
            name=type_name,
            encoding=SCHEMA_ENCODING,
            data=message_definition(type_name).encode(),
        )
        return foxglove.Channel(
            topic, schema=schema, message_encoding=MESSAGE_ENCODING, context=self._context
        )

    def _stop_server(self) -> None:
        """``WebSocketServer.stop()`` with a bound on the wait.

        The SDK's stop sends each client a close frame and waits for every send to finish,
        with no timeout: a client that stopped reading (its TCP window full) holds it forever.
        So stop runs on a helper thread; if it has not returned after a moment, the server's
        accepted connections are shut down at the socket level (found among this process's
        sockets by the server's port), which fails the stuck sends, and stop returns.
        """
        server = self._server
        if server is None:
            return
        done = threading.Thread(target=server.stop, name="live-server-stop", daemon=True)
        done.start()
        done.join(STOP_WAIT_S)
        if not done.is_alive():
            return
        closed = _shutdown_connections(self.address.port)
        log.warning(
            "live view: %d client connection%s did not take the close; shut down",
            closed,
            "s" * (closed != 1),
        )
        done.join(STOP_WAIT_S)
        if done.is_alive():
            log.warning("live view: the server did not stop; left to exit with the process")


def _shutdown_connections(port: int) -> int:
    """Shut down this process's TCP connections whose local port is ``port`` (best effort)."""
    try:
        import psutil

        connections = psutil.Process().net_connections(kind="tcp")
    except Exception as exc:
        log.warning("live view: cannot list this process's connections: %s", exc)
        return 0
    closed = 0
    for c in connections:
        if c.fd < 0 or not c.raddr or c.laddr.port != port:
            continue
        try:
            fd = os.dup(c.fd)
        except OSError:
            continue  # closed meanwhile
        sock = socket.socket(fileno=fd)
        try:
            # The fd number may have been reused since the listing: check it is the same one.
            if sock.getsockname()[1] == port and sock.getpeername()[:2] == tuple(c.raddr)[:2]:
                sock.shutdown(socket.SHUT_RDWR)
                closed += 1
        except OSError:
            pass
        finally:
            sock.close()
    return closed
