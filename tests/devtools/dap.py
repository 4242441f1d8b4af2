"""A minimal Debug Adapter Protocol client: what an editor does when it attaches to debugpy, so a
test can set a breakpoint and see a request stop on it without an editor.

Messages are framed as the protocol specifies (``Content-Length: N`` then a blank line then N
bytes of JSON): https://microsoft.github.io/debug-adapter-protocol/overview#base-protocol
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable

Message = dict[str, Any]


class DapError(AssertionError):
    """The adapter refused a request or did not say what was expected in time."""


class DapClient:
    """One DAP session over TCP. Responses and events are kept in arrival order, so a test can
    wait for any of them regardless of the order the adapter chooses."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._timeout = timeout
        self._buffer = b""
        self._backlog: list[Message] = []
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def send(self, command: str, **arguments: Any) -> int:
        self._seq += 1
        body = json.dumps({"seq": self._seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self._seq

    def _read_message(self, deadline: float) -> Message:
        while True:
            head, separator, rest = self._buffer.partition(b"\r\n\r\n")
            if separator:
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                if len(rest) >= length:
                    self._buffer = rest[length:]
                    return json.loads(rest[:length])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DapError("the debug adapter said nothing more in time")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise DapError("the debug adapter said nothing more in time") from None
            if not chunk:
                raise DapError("the debug adapter closed the connection")
            self._buffer += chunk

    def wait_for(self, predicate: Callable[[Message], bool], what: str, timeout: float | None = None) -> Message:
        deadline = time.monotonic() + (timeout or self._timeout)
        for index, message in enumerate(self._backlog):
            if predicate(message):
                return self._backlog.pop(index)
        while True:
            try:
                message = self._read_message(deadline)
            except DapError as error:
                raise DapError(f"waiting for {what}: {error}") from None
            if predicate(message):
                return message
            self._backlog.append(message)

    def response(self, seq: int, timeout: float | None = None) -> Message:
        message = self.wait_for(lambda m: m.get("type") == "response" and m.get("request_seq") == seq,
                                f"the response to request {seq}", timeout)
        if not message.get("success"):
            raise DapError(f"{message.get('command')} failed: {message.get('message')}")
        return message

    def event(self, name: str, timeout: float | None = None) -> Message:
        return self.wait_for(lambda m: m.get("type") == "event" and m.get("event") == name, f"the {name!r} event", timeout)

    def request(self, command: str, **arguments: Any) -> Message:
        return self.response(self.send(command, **arguments))
