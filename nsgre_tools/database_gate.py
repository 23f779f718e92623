"""The topology database's TLS gate: what ovsdb-server cannot check.

ovsdb-server checks a client's certificate against the CA and nothing
else: it reads no CRL (a revoked certificate still gets in), and any
certificate from the CA may write (its RBAC grants rows to a client whose
CN a column names; it cannot make a client read-only).  So with ``--tls``
a member serves TLS clients only through this gate, one process beside
it, which holds the TLS side and passes the JSON-RPC stream on to the
member's Unix socket:

- the handshake as the controller's (TLS 1.2+, a certificate from the CA,
  the CRL read again when it changes, 10 s to finish); a connection whose
  certificate is revoked or expires while open is closed;
- the certificate's identity decides what passes (``refusal``): a
  controller or a writer reads and writes, a reader only reads (its
  transactions that change anything, and its lock requests, are answered
  "permission denied" by the gate and never reach the database), a host
  or a certificate naming no identity is turned away;
- an inactivity probe, as ovsdb-server's on TCP: a client silent for a
  probe interval is sent an echo (``"id": "echo"``, whose answer the
  server drops as it drops answers to its own), and one silent for as
  long again is cut, its locks going to the next in line.  The gate
  sends the client whole messages only (``ovsdb_rpc.Framer``), so an echo
  never lands inside one.

    python -m nsgre_tools.database_gate --tls DIR --upstream unix:PATH
        --listen pssl:PORT:IP [--listen ...] [--probe MS]

``nsgre db create|join --tls`` starts it (``database.Member.start``); it
says ``ready`` on stdout once it listens, then logs to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from nsgre_core import identity as ident
from nsgre_core.credentials import Credentials, CredentialsError, ServerContext
from osken_apps.ovsdb_rpc import Framer

HANDSHAKE = 10.0          # seconds a client has to finish its TLS handshake
CRL_CHECK = 1.0           # seconds between looks at the CRL for open connections

#: What a reader may ask: everything that only reads.
READ_METHODS = frozenset({"list_dbs", "get_schema", "get_server_id", "echo", "monitor",
                          "monitor_cond", "monitor_cond_since", "monitor_cond_change",
                          "monitor_cancel", "set_db_change_aware"})
READ_OPS = frozenset({"select", "wait", "comment"})
ECHO = json.dumps({"method": "echo", "params": [], "id": "echo"}).encode()


def admission(who: ident.Identity | None) -> str | None:
    """Why a client with this identity may not use the database at all
    (None: it may)."""
    if who is None:
        return "its certificate names no nsgre identity"
    if who.kind == "host":
        return f"a host's certificate ({who.name}) has no business with the topology database"
    return None


def refusal(who: ident.Identity, message: dict) -> str | None:
    """Why ``message`` from ``who`` may not reach the database (None: it
    may).  Answers (an echo's) always pass; a reader's requests only if
    they change nothing."""
    if who.kind in ("controller", "writer") or "method" not in message:
        return None
    method = message.get("method")
    if method not in READ_METHODS:
        if method != "transact":
            return f"{who} may only read: {method} refused"
        params = message.get("params")
        ops = params[1:] if isinstance(params, list) else []
        changing = sorted({op.get("op") if isinstance(op, dict) else "?" for op in ops}
                          - READ_OPS)
        if changing or not ops:
            return (f"{who} may only read: transact with {', '.join(map(str, changing)) or 'no op'}"
                    " refused (a writer's certificate changes the fabric)")
    return None


def denied(message: dict, why: str) -> bytes:
    """The answer to a refused request: a JSON-RPC error, as ovsdb-server's
    own (``{"error": ..., "details": ...}``)."""
    return json.dumps({"id": message.get("id"), "result": None,
                       "error": {"error": "permission denied", "details": why}}).encode()


def log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} nsgre db gate: {line}", file=sys.stderr,
          flush=True)


class Client:
    """One client's connection through the gate."""

    def __init__(self, gate: "Gate", peer: str, who: ident.Identity, cert: dict,
                 reader, writer):
        self.gate, self.peer, self.who = gate, peer, who
        self.serial = int(cert.get("serialNumber", "0"), 16)
        self.not_after = ssl.cert_time_to_seconds(cert["notAfter"]) if "notAfter" in cert \
            else None
        self.reader, self.writer = reader, writer
        self.heard = time.monotonic()
        self.why_closed: str | None = None

    def __str__(self) -> str:
        return f"client {self.peer} ({self.who})"

    def close(self, why: str) -> None:
        if self.why_closed is None:
            self.why_closed = why
        self.writer.close()

    async def run(self, upstream: str) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(upstream)
        except OSError as exc:
            log(f"{self} closed: the database at unix:{upstream} does not answer: {exc}")
            return
        tasks = [asyncio.create_task(self.to_database(up_writer)),
                 asyncio.create_task(self.to_client(up_reader))]
        if self.gate.probe:
            tasks.append(asyncio.create_task(self.probing()))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            up_writer.close()
            self.writer.close()
            log(f"{self} closed: {self.why_closed or 'gone'}")

    async def to_database(self, up_writer) -> None:
        """The client's bytes, as they come for those who may write; a
        reader's message by message, its changes answered here."""
        framer = Framer() if self.who.kind == "reader" else None
        while True:
            try:
                data = await self.reader.read(1 << 16)
            except (OSError, ssl.SSLError) as exc:
                self.why_closed = self.why_closed or str(exc)
                return
            if not data:
                return
            self.heard = time.monotonic()
            if framer is None:
                up_writer.write(data)
            else:
                if framer.feed(data) == "partial":
                    continue
                for message, text in framer.decode():
                    why = refusal(self.who, message) if isinstance(message, dict) else \
                        f"{self.who} sent something that is not a JSON-RPC message"
                    if why is None:
                        up_writer.write(text.encode())
                    else:
                        log(f"{self}: {why}")
                        self.writer.write(denied(message if isinstance(message, dict) else {},
                                                 why))
                await self.writer.drain()
            await up_writer.drain()

    async def to_client(self, up_reader) -> None:
        """The database's answers, whole messages at a time."""
        framer = Framer()
        waiting = False
        while True:
            try:
                data = await asyncio.wait_for(up_reader.read(1 << 20),
                                              Framer.UNBALANCED_WAIT if waiting else None)
            except asyncio.TimeoutError:
                data, state = None, "whole"
            if data == b"":
                self.why_closed = self.why_closed or "the database closed the connection"
                return
            if data is not None:
                state = framer.feed(data)
            waiting = state == "unbalanced"
            if state == "partial" or waiting:
                continue
            for _, text in framer.decode():
                self.writer.write(text.encode())
            await self.writer.drain()

    async def probing(self) -> None:
        probe = self.gate.probe
        echoed = False
        while True:
            await asyncio.sleep(probe / 4)
            silent = time.monotonic() - self.heard
            if silent >= 2 * probe:
                self.why_closed = f"silent for {silent * 1000:.0f} ms (probe {probe * 1000:.0f} ms)"
                return
            if silent >= probe and not echoed:
                self.writer.write(ECHO)           # between two whole messages
                echoed = True
            elif silent < probe:
                echoed = False


class Gate:
    def __init__(self, credentials: Credentials, upstream: str, probe: float):
        self.cred = credentials
        self.contexts = ServerContext(credentials)
        self.upstream = upstream
        self.probe = probe
        self.clients: set[Client] = set()

    async def accept(self, reader, writer) -> None:
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        try:
            await writer.start_tls(self.contexts.get(), ssl_handshake_timeout=HANDSHAKE)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            why = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) \
                or str(exc) or type(exc).__name__
            log(f"client {peer} refused (no nsgre identity): TLS handshake failed: {why}")
            writer.close()
            return
        cert = writer.get_extra_info("peercert") or {}
        who = ident.from_peercert(cert)
        why = admission(who)
        if why is not None:
            log(f"client {peer} refused ({who or 'no nsgre identity'}): {why}")
            writer.close()
            return
        client = Client(self, peer, who, cert, reader, writer)
        log(f"{client}: {'reads' if who.kind == 'reader' else 'reads and writes'}")
        self.clients.add(client)
        try:
            await client.run(self.upstream)
        finally:
            self.clients.discard(client)

    async def watch_revocations(self) -> None:
        """Open connections whose certificate was revoked, or expired,
        since they opened: closed."""
        stamp = None
        while True:
            await asyncio.sleep(CRL_CHECK)
            revoked: set[int] = set()
            crl = self.cred.crl
            now_stamp = os.stat(crl).st_mtime_ns if crl is not None else None
            if now_stamp != stamp and crl is not None:
                from cryptography import x509
                try:
                    revoked = {r.serial_number
                               for r in x509.load_pem_x509_crl(crl.read_bytes())}
                except ValueError as exc:
                    log(f"{crl}: unreadable, open connections kept: {exc}")
            stamp = now_stamp
            now = time.time()
            for client in list(self.clients):
                if client.serial in revoked:
                    log(f"{client}: its certificate was revoked")
                    client.close("its certificate was revoked")
                elif client.not_after is not None and client.not_after < now:
                    log(f"{client}: its certificate has expired")
                    client.close("its certificate has expired")

    async def serve(self, listens: list[tuple[str, int]]) -> None:
        servers = [await asyncio.start_server(self.accept, host, port)
                   for host, port in listens]
        where = ", ".join(f"{h}:{p}" for h, p in listens)
        log(f"TLS on {where} for unix:{self.upstream} (certificates of {self.cred.ca}; "
            f"inactivity probe {self.probe * 1000:.0f} ms)")
        print("ready", flush=True)
        sys.stdout.close()
        await asyncio.gather(self.watch_revocations(), *(s.serve_forever() for s in servers))


def listen_address(remote: str) -> tuple[str, int]:
    """``pssl:PORT[:IP]`` as (IP, PORT); ValueError otherwise."""
    kind, _, rest = remote.partition(":")
    port, _, host = rest.partition(":")
    if kind != "pssl" or not port.isdigit():
        raise ValueError(f"{remote}: the gate serves pssl:PORT[:IP] remotes only")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="nsgre-database-gate", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--tls", required=True, metavar="DIR")
    parser.add_argument("--upstream", required=True, metavar="unix:PATH")
    parser.add_argument("--listen", action="append", required=True, metavar="pssl:PORT:IP")
    parser.add_argument("--probe", type=int, default=5000, metavar="MS",
                        help="inactivity probe (0: none)")
    args = parser.parse_args(argv)
    try:
        cred = Credentials(args.tls)
        listens = [listen_address(r) for r in args.listen]
    except (CredentialsError, ValueError) as exc:
        raise SystemExit(f"nsgre db gate: {exc}")
    if not args.upstream.startswith("unix:"):
        raise SystemExit(f"nsgre db gate: --upstream {args.upstream}: unix:PATH only")
    gate = Gate(cred, args.upstream[len("unix:"):], args.probe / 1000)
    try:
        asyncio.run(gate.serve(listens))
    except OSError as exc:
        raise SystemExit(f"nsgre db gate: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
