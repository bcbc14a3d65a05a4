"""A TCP proxy in front of the test SMTP server that can misbehave as a relay does: pass
traffic through, or accept connections and never say a word (no greeting), and drop the
connections it holds."""

import socket
import threading

from tests.smtp_server import free_port


class FaultProxy:
    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.silent = False  # accept, then stay silent (the client's connect timeout runs out)
        self.connections = 0  # accepted so far
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(client)
            if self.silent:
                continue  # held open, never answered
            upstream = socket.create_connection(self.target)
            for sock in (client, upstream):  # no Nagle: pipelined SMTP writes small pieces
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_all(self) -> None:
        """Close every connection held now (clients see them drop mid-session)."""
        with self._lock:
            held, self._open = self._open, []
        for sock in held:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._running = False
        self._listener.close()
        self.drop_all()
