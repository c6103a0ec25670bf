"""One Hearth per user and home: a second launch hands over to the running one and exits.

A double-click on the desktop entry while Hearth is already open should bring the open
window forward, not start a second engine that loads the model again and doubles the RAM.
The first instance listens on a local socket (``QLocalServer``: a Unix socket, or a named
pipe on Windows); a later launch connects, sends one JSON line and waits for the answer.

The server name is derived from the user and the Hearth home folder, so tests (each with
its own ``HEARTH_HOME``) and portable installs never see each other. A socket file left
behind by a crashed instance is detected (nothing answers) and replaced.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

from core.paths import hearth_home

CONNECT_TIMEOUT_MS = 500
REPLY_TIMEOUT_MS = 3000


def server_name(home: Path | None = None) -> str:
    """The local server's name for this user and Hearth home (short: socket paths are)."""
    home = (home or hearth_home()).resolve()
    digest = hashlib.sha1(f"{getpass.getuser()}\0{home}".encode()).hexdigest()[:16]
    return f"hearth-{digest}"


class SingleInstance(QObject):
    """Claims the instance lock, or hands a request over to the instance that holds it.

    Signals: ``activationRequested(dict)`` on the first instance when a later launch asks it
    to show itself; the dict is that launch's request (``{"action": "raise", "model": path
    or None}``).
    """

    activationRequested = Signal(dict)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self.server: QLocalServer | None = None

    def hand_over(self, request: dict) -> bool:
        """Send ``request`` to a running instance; True if one received it (then exit)."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
            return False
        socket.write(json.dumps(request).encode() + b"\n")
        socket.flush()
        answered = False
        while socket.waitForReadyRead(REPLY_TIMEOUT_MS):
            if socket.canReadLine():
                answered = bytes(socket.readLine().data()).strip() == b"ok"
                break
        socket.disconnectFromServer()
        return answered

    def claim(self) -> bool:
        """Start listening as the one instance. False if another instance answers instead
        (a launch that raced this one); a dead instance's socket file is replaced."""
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            if server.serverError() != QAbstractSocket.SocketError.AddressInUseError:
                return True  # no lock possible (odd platform): run without one
            if self._someone_answers():
                return False
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                return True
        server.newConnection.connect(self._accept)
        self.server = server
        return True

    def _someone_answers(self) -> bool:
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        alive = socket.waitForConnected(CONNECT_TIMEOUT_MS)
        socket.abort()
        return alive

    def _accept(self) -> None:
        assert self.server is not None
        while (socket := self.server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        if not socket.canReadLine():
            return
        try:
            request = json.loads(bytes(socket.readLine().data()))
        except ValueError:
            request = None
        if not isinstance(request, dict):
            socket.abort()
            return
        self.activationRequested.emit(request)  # before answering: the caller then exits
        socket.write(b"ok\n")
        socket.flush()

    def close(self) -> None:
        """Stop listening (the socket file goes away with it)."""
        if self.server is not None:
            self.server.close()
            self.server = None
