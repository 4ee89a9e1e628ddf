"""The serial pedal on a real serial path: a pseudo-terminal stands in for the pedal's port."""

from __future__ import annotations

import os
import threading
import time
import tty

import pytest

from rigs.pedal import DEFAULT_MAPPING, PedalError, SerialPedal, parse_mapping, parse_port


@pytest.fixture()
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes as sent: no line discipline between the "pedal" and the reader
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def wait_for(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_bytes_on_the_port_become_actions_in_order(pty_pair):
    master, port = pty_pair
    got: list[str] = []
    lock = threading.Lock()

    def on_action(action: str) -> None:
        with lock:
            got.append(action)

    with SerialPedal(port, 9600, DEFAULT_MAPPING, on_action=on_action) as pedal:
        os.write(master, b"1")
        wait_for(lambda: got == ["start_stop"])
        os.write(master, b"x\r\n2")  # noise and line endings are skipped
        os.write(master, b"3")
        os.write(master, b"1")
        wait_for(lambda: len(got) == 4)
        assert threading.current_thread() is not pedal._thread
    assert got == ["start_stop", "keep", "discard", "start_stop"]
    assert pedal.received == got


def test_multi_byte_tokens_split_across_reads(pty_pair):
    master, port = pty_pair
    got: list[str] = []
    mapping = {"GO\n": "start_stop", b"K": "keep", "KEEPNEXT": "rerecord"}
    with SerialPedal(port, 115200, mapping, on_action=got.append) as pedal:
        os.write(master, b"G")
        wait_for(lambda: pedal.pending == b"G")  # the reader has seen half a token, alone
        assert got == []
        os.write(master, b"O\nK")
        wait_for(lambda: len(got) == 2)
        os.write(master, b"KEEPNEXT")
        wait_for(lambda: len(got) == 3)
    assert got == ["start_stop", "keep", "rerecord"]


def test_port_and_mapping_options():
    assert parse_port("/dev/ttyACM0") == ("/dev/ttyACM0", 9600)
    assert parse_port("/dev/ttyACM0:115200") == ("/dev/ttyACM0", 115200)
    assert parse_mapping("1=start_stop, 2=keep,\\n=discard") == {
        b"1": "start_stop",
        b"2": "keep",
        b"\n": "discard",
    }
    with pytest.raises(PedalError, match="TOKEN=ACTION"):
        parse_mapping("1start")


def test_missing_port_is_one_clear_error(tmp_path):
    with pytest.raises(PedalError, match="cannot open"):
        SerialPedal(str(tmp_path / "no-such-tty")).start()
