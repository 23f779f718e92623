"""Let os-ken accept OpenFlow connections on a Unix socket.

osken-manager listens on a Unix socket when ``--ofp-listen-host`` is a
path, but ``Datapath.__init__`` then sets TCP_NODELAY on the accepted
socket, which fails (EOPNOTSUPP) and drops the switch.  Emulated hosts each
live in their own network namespace and reach the controller only through
the filesystem, so we skip TCP-level options on Unix sockets.
"""

import socket

from os_ken.controller import controller


class _UnixSocket:
    def __init__(self, sock):
        self._sock = sock

    def setsockopt(self, level, option, value):
        if level == socket.IPPROTO_TCP:
            return None
        return self._sock.setsockopt(level, option, value)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def install():
    original = controller.Datapath.__init__
    if getattr(original, "nsgre_unix", False):
        return

    def init(self, sock, address):
        if sock.family == socket.AF_UNIX:
            sock, address = _UnixSocket(sock), address or ("unix", 0)
        original(self, sock, address)

    init.nsgre_unix = True
    controller.Datapath.__init__ = init
