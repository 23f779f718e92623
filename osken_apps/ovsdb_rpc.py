"""OVSDB's JSON-RPC over a plain socket: transactions and a stream of
messages, for the controller's reads and writes and for the operator's
tools (no IDL: the ``ovs`` IDL would parse replies in pure Python, ~1 s for
a host of 2,500 ports, against ~0.05 s with the standard library's
decoder; and the tools never load it).  Unix and TCP remotes
(``unix:PATH``, ``tcp:IP:PORT``)."""

from __future__ import annotations

import codecs
import json
import queue
import re
import select
import socket
import threading
import time


class OvsdbError(RuntimeError):
    pass


#: This program's credentials (``nsgre_core.credentials.Credentials``) for
#: ``ssl:`` remotes (``use``): the database serves only clients whose
#: certificate comes from its CA.
_credentials = None


def use(credentials) -> None:
    global _credentials
    _credentials = credentials


#: ``ssl:`` remotes bound to the identity their server must present
#: (``bind``): a host's OVSDB is the host its certificate names, as a
#: switch is; any other certificate from the CA is hung up on.
_bound: dict = {}


def bind(remote: str, identity) -> None:
    _bound[remote] = identity


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
        if isinstance(failed, dict):          # {"error": ..., "details": ...}
            failed, detail = failed.get("error"), failed.get("details", "")
        else:
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
    elif kind in ("tcp", "ssl"):
        ip, _, port = where.rpartition(":")
        ip = ip.strip("[]")
        family, address = (socket.AF_INET6 if ":" in ip else socket.AF_INET), (ip, int(port))
        if kind == "ssl" and _credentials is None:
            raise OvsdbError(f"{remote}: an ssl: remote needs this program's certificate "
                             "(--tls DIR)")
    else:
        raise OvsdbError(f"{remote}: only unix:, tcp: and ssl: remotes can be used directly")
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
    if kind == "ssl":
        import ssl
        from nsgre_core.credentials import client_context
        from nsgre_core import identity as ident
        try:
            sock = client_context(_credentials).wrap_socket(sock)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise OvsdbError(f"{remote}: TLS handshake failed: "
                             f"{getattr(exc, 'verify_message', None) or exc}") from None
        expected = _bound.get(remote)
        found = ident.from_peercert(sock.getpeercert())
        if expected is not None and found != expected:
            sock.close()
            raise OvsdbError(f"{remote}: its certificate names {found or 'no nsgre identity'}, "
                             f"not {expected}: hung up")
    return sock


class Framer:
    """Whole JSON-RPC messages out of a stream of bytes, each with the text
    it came as (the database's TLS gate forwards that text unchanged).

    A message is decoded once it can be whole: the text received ends in a
    brace and its braces balance (counted per chunk, in C), or its reader
    has waited ``UNBALANCED_WAIT`` for more in vain (braces inside strings,
    an ``iface_id`` may hold one, unbalance the count).  Decoding at every
    chunk that happened to end in a brace re-parsed a 6 MB answer from its
    start again and again (3 to 10 times the CPU of one parse, worse the
    smaller the chunks: a busy machine's).  Bytes are decoded
    incrementally: a character split across two chunks is not an error."""

    #: Seconds a reader waits for more before decoding text whose braces do not balance.
    UNBALANCED_WAIT = 0.05

    def __init__(self):
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.parts: list[str] = []        # text received since the last whole message
        self.depth = 0                    # its "{" less its "}" (strings too: a hint only)
        self.last = ""                    # its last character that is not a space

    def feed(self, chunk: bytes) -> str:
        """Take ``chunk``; then ``"whole"`` (decode now), ``"unbalanced"``
        (decode unless more comes soon) or ``"partial"`` (wait for more)."""
        text = self.utf8.decode(chunk)
        self.parts.append(text)
        self.depth += text.count("{") - text.count("}")
        stripped = text.rstrip()
        if stripped:
            self.last = stripped[-1]
        if self.last != "}":
            return "partial"              # a message ends with a brace
        return "whole" if self.depth == 0 else "unbalanced"

    @property
    def holding(self) -> bool:
        return bool(self.parts)

    def decode(self) -> list[tuple[dict, str]]:
        """The whole messages held, each with its text; the rest is kept."""
        text = "".join(self.parts)
        position, start, found = 0, 0, []
        try:
            while True:
                while position < len(text) and text[position].isspace():
                    position += 1
                start = position
                if position == len(text):
                    break
                message, position = self.decoder.raw_decode(text, position)
                found.append((message, text[start:position]))
        except ValueError:
            pass                          # the brace ended a part; the rest is coming
        tail = text[start:]
        self.parts = [tail] if tail else []
        self.depth = tail.count("{") - tail.count("}")
        return found


class _Messages:
    """JSON-RPC messages from a stream socket, one at a time (``Framer``)."""

    UNBALANCED_WAIT = Framer.UNBALANCED_WAIT

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.framer = Framer()
        self.pending: list = []

    def next(self) -> dict:
        while not self.pending:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                if self.framer.holding:
                    self._decode()        # whatever came whole before the end
                if self.pending:
                    break
                raise OvsdbError("connection closed")
            state = self.framer.feed(chunk)
            if state == "partial" or (state == "unbalanced" and self._more_coming()):
                continue
            self._decode()
        return self.pending.pop(0)

    def _more_coming(self) -> bool:
        if getattr(self.sock, "pending", lambda: 0)():
            return True                   # TLS: decrypted bytes already buffered
        return bool(select.select([self.sock], [], [], self.UNBALANCED_WAIT)[0])

    def _decode(self) -> None:
        self.pending = [message for message, _ in self.framer.decode()]


class Session:
    """One JSON-RPC connection to an OVSDB server, kept open: requests sent,
    messages read one at a time, the server's echoes answered on the way.
    With ``probe``, a server silent that long is sent an echo, and one
    silent for as long again is given up (``OvsdbError``): a frozen member
    must not hold a controller's lock session or watch forever.

    ``writer``: every message is sent by a thread of its own, in order, and
    ``send`` never waits.  ovsdb-server reads a client's requests only once
    it has sent that client everything it owes it; a reader that blocks in
    a send (a watch's conditions run to megabytes) while the server is
    sending it a large update waits for itself, for ever."""

    def __init__(self, remote: str, timeout: float = 10.0, probe: float | None = None,
                 writer: bool = False):
        self.remote = remote
        self.probe = probe
        self.sock = _connect(remote, timeout)
        self.sock.settimeout(probe)
        self.messages = _Messages(self.sock)
        self.outbox: queue.Queue | None = None
        self.failed: str | None = None           # why the writer stopped
        if writer:
            self.outbox = queue.Queue()
            if hasattr(self.sock, "getpeercert"):
                out = self.sock              # TLS: one connection state, no second descriptor
            else:
                out = self.sock.dup()        # its own timeout (none): the reader's is per read
                out.settimeout(None)
            threading.Thread(target=self._write, args=(out,), daemon=True,
                             name=f"ovsdb-writer {remote}").start()

    def send(self, message: dict) -> None:
        data = json.dumps(message).encode()
        if self.outbox is not None:
            if self.failed:
                raise OvsdbError(f"{self.remote}: {self.failed}")
            self.outbox.put(data)
            return
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise OvsdbError(f"{self.remote}: {exc}") from exc

    def _write(self, out: socket.socket) -> None:
        try:
            while (data := self.outbox.get()) is not None:
                out.sendall(data)
        except OSError as exc:
            self.failed = str(exc)
            self._shut()                     # the reader finds the connection gone
        finally:
            if out is not self.sock:
                out.close()

    def request(self, method: str, params: list, ident: str) -> None:
        self.send({"method": method, "params": params, "id": ident})

    def next(self, until: float | None = None) -> dict | None:
        """The next message that is not an echo (nor the answer to ours);
        None once ``until`` (a ``time.monotonic()``) has passed (checked
        before every read: a server's echoes must not keep it waiting)."""
        probed = False
        while True:
            wait = self.probe
            if until is not None:
                left = until - time.monotonic()
                if left <= 0:
                    return None
                wait = left if wait is None else min(wait, left)
            try:
                self.sock.settimeout(wait)
                message = self.messages.next()
            except socket.timeout:
                if until is not None and time.monotonic() >= until:
                    return None
                if probed:
                    raise OvsdbError(f"{self.remote}: no answer to an echo") from None
                self.request("echo", [], "nsgre-probe")
                probed = True
                continue
            except (OSError, ValueError) as exc:
                raise OvsdbError(f"{self.remote}: {exc}") from exc
            probed = False
            if message.get("method") == "echo":
                self.send({"id": message["id"], "result": message["params"], "error": None})
            elif message.get("id") != "nsgre-probe":
                return message

    def close(self) -> None:
        """Closed, and shut down first: a read under way in another thread ends."""
        if self.outbox is not None:
            self.outbox.put(None)
        self._shut()
        self.sock.close()

    def _shut(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Monitor:
    """An OVSDB ``monitor_cond`` of ``database``: ``conditions`` (table ->
    clauses, any of which selects a row) say which rows it sends, and
    ``change`` makes them others at any time (from another green thread:
    it only sends).  ``messages`` yields ``("answer", updates)`` for the
    first answer (every row selected), ``("answer", None)`` when a
    change is answered (every row it newly selects, or drops, came
    before), and ``("update", updates)`` for each commit, all as
    ``update2`` (``topology.rows.from_update2``), until the connection
    fails (``OvsdbError``) or ``alive()`` turns false; echoes are
    answered on the way.  ``columns`` (table -> columns): what it sends of
    a table's rows (default: every column).  Its owner closes it."""

    def __init__(self, remote: str, database: str, conditions: dict, timeout: float = 10.0,
                 probe: float | None = None, columns: dict | None = None):
        self.remote = remote
        self.session = Session(remote, timeout, probe, writer=True)
        self.changes = 0
        self.id = "nsgre-0"
        requests = _where(conditions)
        for table, request in requests.items():
            if table in (columns or {}):
                request[0]["columns"] = columns[table]
        self.session.request("monitor_cond", [database, self.id, requests], self.id)

    def change(self, conditions: dict) -> None:
        self.changes += 1
        new = f"nsgre-{self.changes}"
        self.session.request("monitor_cond_change", [self.id, new, _where(conditions)], new)
        self.id = new

    def close(self) -> None:
        self.session.close()

    def messages(self, alive=lambda: True):
        while alive():
            message = self.session.next()
            if message.get("method") == "update2":
                yield "update", message["params"][1]
            elif str(message.get("id", "")).startswith("nsgre-"):
                if message.get("error"):
                    raise OvsdbError(f"{self.remote}: monitor_cond refused: "
                                     f"{message['error']}")
                yield "answer", ((message.get("result") or {})
                                 if message["id"] == "nsgre-0" else None)


def _where(conditions: dict) -> dict:
    return {table: [{"where": clauses}] for table, clauses in conditions.items()}


#: OVSDB lock names are identifiers: anything else is a syntax error, which
#: the Python IDL swallows (the lock is then never granted).
LOCK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class NotLeader(OvsdbError):
    """The member is not its cluster's leader (or lost the cluster)."""


def lock(remote: str, database: str, name: str, granted: list, alive=lambda: True,
         probe: float = 1.0, grace: float = 0.0):
    """Hold OVSDB lock ``name`` on ``remote``: yields None while queued and,
    once granted, the result of the transaction ``granted`` (operations run
    on this session after an ``assert`` of the lock, so they land only while
    it is held), until the session ends (``OvsdbError``) or its member stops
    being the leader of ``database``'s cluster (``NotLeader``, at once if it
    is not).  ``grace``: seconds between finding the leader and asking for
    the lock (a backup's wait).  Locks are not replicated: each member grants its own, so a
    lock counts only on the leader (as ovn-northd's ``leader_only``); a
    standalone server is its own leader."""
    if not LOCK_NAME.match(name):
        raise ValueError(f"{name!r}: an OVSDB lock name is an identifier")
    session = Session(remote, probe=probe)
    rows: dict = {}
    ask_at = None                 # when to ask for the lock, once the leader is found
    held = False
    try:
        session.request("monitor", ["_Server", "leader", {"Database": {
            "columns": ["name", "model", "connected", "leader"]}}], "leader")
        while alive():
            message = session.next(ask_at)
            if message is None:
                session.request("lock", [name], "lock")
                ask_at = None
                continue
            ident, method = message.get("id"), message.get("method")
            if message.get("error"):
                raise OvsdbError(f"{remote}: {ident}: {message['error']}")
            if ident == "leader" or (method == "update" and message["params"][0] == "leader"):
                result = message["result"] if ident == "leader" else message["params"][1]
                for uuid, change in (result or {}).get("Database", {}).items():
                    if "new" in change:
                        rows[uuid] = change["new"]
                    else:
                        rows.pop(uuid, None)
                mine = [r for r in rows.values() if r.get("name") == database]
                if not mine:
                    raise OvsdbError(f"{remote}: serves no database {database}")
                if mine[0].get("model") == "clustered" and not (
                        mine[0].get("leader") is True and mine[0].get("connected") is True):
                    raise NotLeader(f"{remote}: not the leader of {database}'s cluster")
                if ident == "leader" and grace:
                    ask_at = time.monotonic() + grace
                elif ident == "leader":
                    session.request("lock", [name], "lock")
            elif (ident == "lock" and (message.get("result") or {}).get("locked")) or \
                    method == "locked":
                # Once per session: ovsdb-server 3.1 was seen to send a holder
                # "locked" again when another client asked for its lock.
                if not held:
                    held = True
                    session.request("transact", [database, {"op": "assert", "lock": name},
                                                 *granted], "granted")
            elif ident == "lock":
                yield None
            elif ident == "granted":
                failed = [r for r in message["result"] if isinstance(r, dict) and r.get("error")]
                if failed:
                    raise OvsdbError(f"{remote}: lock {name} granted, but: {failed[0]}")
                yield message["result"][1:]
            elif method == "stolen":
                raise OvsdbError(f"{remote}: lock {name} stolen")
    finally:
        session.close()
