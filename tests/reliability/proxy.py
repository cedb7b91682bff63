"""A TCP proxy that resets the connection part way through a server's answer.

``ResettingProxy(host, port).start()`` listens on 127.0.0.1 and relays each connection to the
upstream server. After ``arm(after_bytes, times)``, once ``after_bytes`` more bytes have gone
from the server to clients, the proxy forwards exactly that many and ends the connection in
flight with a TCP RST (SO_LINGER 0), on both sides; it does so ``times`` times, counting
afresh after each reset. The client has read everything before that point, then its next
read fails with "connection reset", wherever the server was in sending its result: a fault
at a fixed place in the stream, however much the kernels would have buffered.

:class:`ProxyProcess` runs the proxy in a process of its own. Use it when the client may hold
the GIL while it connects (connectorx's Arrow stream does): a proxy thread in the client's
process would then never get to accept the connection.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import selectors
import socket
import struct
import threading
from typing import Any

_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


class ResettingProxy:
    """Relays 127.0.0.1:``port`` to ``upstream``, one thread per connection."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.resets = 0
        self._after: int | None = None
        self._budget = 0
        self._times = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> ResettingProxy:
        threading.Thread(target=self._accept, name="reset-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def arm(self, after_bytes: int, times: int = 1) -> None:
        """Reset the connection carrying the ``after_bytes``-th byte from now, ``times`` times."""
        with self._lock:
            self._after, self._budget, self._times = after_bytes, after_bytes, times

    def disarm(self) -> None:
        with self._lock:
            self._after, self._times = None, 0

    def _allowance(self, size: int) -> int | None:
        """How much of ``size`` bytes may pass before a reset; None when all of it may."""
        with self._lock:
            if self._after is None or self._times <= 0:
                return None
            if size < self._budget:
                self._budget -= size
                return None
            allowed, self._budget = self._budget, self._after
            self._times -= 1
            self.resets += 1
            return allowed

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        peers: dict[Any, socket.socket] = {client: server, server: client}
        with selectors.DefaultSelector() as sel:
            for sock in peers:
                sel.register(sock, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    source = key.fileobj
                    try:
                        data = source.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:
                        client.close()
                        server.close()
                        return
                    allowed = self._allowance(len(data)) if source is server else None
                    try:
                        peers[source].sendall(data if allowed is None else data[:allowed])
                    except OSError:
                        allowed = 0
                    if allowed is not None:
                        _reset(client)
                        _reset(server)
                        return


def _serve(host: str, port: int, control: Any) -> None:
    """The proxy process: report the port, then obey ``("arm", after, times)`` / ``("disarm",)``."""
    proxy = ResettingProxy(host, port).start()
    control.send(proxy.port)
    while True:
        try:
            command = control.recv()
        except EOFError:
            return
        if command[0] == "arm":
            proxy.arm(command[1], command[2])
        elif command[0] == "disarm":
            proxy.disarm()
        control.send("ok")


class ProxyProcess:
    """A :class:`ResettingProxy` in a child process, armed from this one."""

    def __init__(self, host: str, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._control, child_end = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(host, port, child_end), daemon=True)
        self._process.start()
        if not self._control.poll(30):
            self._process.kill()
            raise RuntimeError("the proxy process did not start within 30 s")
        self.port: int = self._control.recv()

    def arm(self, after_bytes: int, times: int = 1) -> None:
        self._control.send(("arm", after_bytes, times))
        self._control.recv()

    def disarm(self) -> None:
        self._control.send(("disarm",))
        self._control.recv()

    def stop(self) -> None:
        self._control.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
