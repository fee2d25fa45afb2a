"""A TCP forwarder the test can cut: makes a server unreachable without killing it.

`moto_server` keeps its objects in memory, so killing it to simulate an S3 outage would also
lose the repository. Putting this proxy between the worker and moto lets a test make S3
refuse connections (`down()`: the listening socket closes, open connections are reset) and
come back (`up()`: listening again on the same port), with moto's data intact.

`bytes_per_second` caps the bandwidth of all connections together (both directions): a
backup through a slow link lasts long enough to be interrupted half-way, whatever the speed of
the engine, without test data of gigabytes.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
import time

# Below Linux's ephemeral range (32768-60999): a port from that range, once the proxy closes
# it, may be taken as the SOURCE port of some outgoing connection and could not be bound again.
_PORT_RANGE = (20000, 32000)


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, bytes_per_second: float = 0):
        self.target = (target_host, target_port)
        self.bytes_per_second = bytes_per_second
        self._pace_lock = threading.Lock()
        self._link_free_at = 0.0
        self.port = self._pick_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _pick_port() -> int:
        for _ in range(200):
            port = random.randrange(*_PORT_RANGE)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue
        raise RuntimeError("no free port for the TCP proxy")

    def up(self, timeout: float = 10.0) -> TcpProxy:
        """Listen (again) on the same port; retries briefly while the port is still busy."""
        deadline = time.monotonic() + timeout
        while True:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError as error:
                listener.close()
                if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and reset the open ones (like a dead server)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # close() alone does not wake the thread blocked in accept(), and while it is
            # blocked the socket keeps listening (and the port stays taken); shutdown() wakes it.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            try:
                # Linger 0: close() sends a reset, as a crashed server's host would.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pace(self, size: int) -> None:
        """Wait until the shared link has carried `size` more bytes at `bytes_per_second`."""
        if not self.bytes_per_second:
            return
        with self._pace_lock:
            now = time.monotonic()
            self._link_free_at = max(now, self._link_free_at) + size / self.bytes_per_second
            wait = self._link_free_at - now
        time.sleep(wait)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(16384)
                if not data:
                    break
                self._pace(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
