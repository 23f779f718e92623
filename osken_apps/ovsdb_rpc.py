"""OVSDB's JSON-RPC over a plain socket: transactions and a stream of
messages, for the controller's reads and writes and for the operator's
tools (no IDL: the ``ovs`` IDL would parse replies in pure Python, ~1 s for
a host of 2,500 ports, against ~0.05 s with the standard library's
decoder; and the tools never load it).  Unix and TCP remotes
(``unix:PATH``, ``tcp:IP:PORT``)."""

from __future__ import annotations

import json
import socket


class OvsdbError(RuntimeError):
    pass


class OvsdbTimeout(OvsdbError):
    """No answer in time, or a transaction's ``wait`` whose condition did
    not hold (OVSDB reports both as "timed out"): worth reading again and
    retrying, unlike other errors."""


def transact(remote: str, ops: list[dict], timeout: float = 5.0,
             database: str = "Open_vSwitch") -> list:
    """Run ``ops`` in one OVSDB transaction over a plain socket; their results.

    For the controller, which reads every host's bridge on start and writes
    tunnels when hosts come and go, in its one event loop.  The ``ovs``
    IDL would parse the replies in pure Python (its C parser needs OVS's
    headers, which pip does not have): ~1 s for a host of 2,500 ports,
    against ~0.05 s with the standard library's decoder.  Unix and TCP
    remotes (``unix:PATH``, ``tcp:IP:PORT``)."""
    request = {"method": "transact", "params": [database, *ops], "id": "nsgre"}
    try:
        with _connect(remote, timeout) as sock:
            sock.sendall(json.dumps(request).encode())
            reply = _read_reply(sock, request["id"])
    except socket.timeout as exc:
        raise OvsdbTimeout(f"{remote}: no reply within {timeout} s") from exc
    except (OSError, ValueError) as exc:
        raise OvsdbError(f"{remote}: {exc}") from exc
    results = reply.get("result") or []
    failed = reply.get("error") or next((r["error"] for r in results
                                         if isinstance(r, dict) and r.get("error")), None)
    if failed is not None:
        detail = next((r.get("details", "") for r in results
                       if isinstance(r, dict) and r.get("error")), "")
        kind = OvsdbTimeout if failed == "timed out" else OvsdbError
        raise kind(f"{remote}: {failed} {detail}".strip())
    return results


def _read_reply(sock: socket.socket, ident: str) -> dict:
    """The JSON-RPC reply ``ident`` (anything else the server sends first,
    such as an echo request, is skipped)."""
    messages = _Messages(sock)
    while True:
        message = messages.next()
        if message.get("id") == ident:
            return message


def _connect(remote: str, timeout: float) -> socket.socket:
    kind, _, where = remote.partition(":")
    if kind == "unix":
        family, address = socket.AF_UNIX, where
    elif kind == "tcp":
        ip, _, port = where.rpartition(":")
        ip = ip.strip("[]")
        family, address = (socket.AF_INET6 if ":" in ip else socket.AF_INET), (ip, int(port))
    else:
        raise OvsdbError(f"{remote}: only unix: and tcp: remotes can be used directly")
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except socket.timeout as exc:
        sock.close()
        raise OvsdbTimeout(f"{remote}: no answer within {timeout} s") from exc
    except OSError as exc:
        sock.close()
        raise OvsdbError(f"{remote}: {exc}") from exc
    return sock


class _Messages:
    """JSON-RPC messages from a stream socket, one at a time."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.decoder = json.JSONDecoder()
        self.text = ""
        self.pending: list = []

    def next(self) -> dict:
        while not self.pending:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise OvsdbError("connection closed")
            self.text += chunk.decode()
            if not self.text.rstrip().endswith("}"):
                continue                  # a message ends with a brace; wait for more
            position, found = 0, []
            try:
                while True:
                    while position < len(self.text) and self.text[position].isspace():
                        position += 1
                    if position == len(self.text):
                        break
                    message, position = self.decoder.raw_decode(self.text, position)
                    found.append(message)
            except ValueError:
                continue                  # the brace ended a part; more is coming
            self.text, self.pending = "", found
        return self.pending.pop(0)


def monitor(remote: str, database: str, tables: dict, alive=lambda: True, timeout=10.0):
    """The updates of an OVSDB ``monitor`` of ``tables`` (table -> what
    the monitor request asks of it), the first answer included, until the
    connection fails (``OvsdbError``) or ``alive()`` turns false; echoes
    are answered on the way."""
    sock = _connect(remote, timeout)
    try:
        sock.sendall(json.dumps({"method": "monitor", "id": "nsgre",
                                 "params": [database, "nsgre", tables]}).encode())
        sock.settimeout(None)
        messages = _Messages(sock)
        while alive():
            try:
                message = messages.next()
            except (OSError, ValueError) as exc:
                raise OvsdbError(f"{remote}: {exc}") from exc
            if message.get("method") == "echo":
                sock.sendall(json.dumps({"id": message["id"], "result": message["params"],
                                         "error": None}).encode())
            elif message.get("id") == "nsgre":
                if message.get("error"):
                    raise OvsdbError(f"{remote}: monitor refused: {message['error']}")
                yield message.get("result") or {}
            elif message.get("method") == "update":
                yield message["params"][1]
    finally:
        sock.close()
