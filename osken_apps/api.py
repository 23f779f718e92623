"""The controller's small HTTP API (the client is ``nsgre_tools.client``).

os-ken 3.x no longer ships a WSGI framework, so this is a plain WSGI app
served by eventlet (which os-ken already runs on), by default on a Unix
socket: only local users who may read the socket can change the fabric.

    GET  /topology   the topology in force
    GET  /switches   connected hosts, their datapath ids and ports
    GET  /fabric     the model joined with what the switches report (nsgre show)
    GET  /flows      installed nsgre flows per host, named, with counters
    GET  /groups     installed nsgre groups per host, with counters
    GET  /desired    what each connected host should hold (ovs-ofctl text)
    GET  /diff       desired against installed per host (nsgre diff)
    GET  /trace      ?src=&dst=&proto=&vlan=  a trace through the installed flows
    GET  /status     this controller among several: shards held, role on each switch
    GET  /metrics    Prometheus text format
    POST /apply      body: topology YAML; validate, then apply the delta
    POST /objects    one endpoint, network or host added or deleted (JSON), kept in the file
                     (?wait=SECONDS: answer once every host holds it)

On TCP (HOST:PORT) it serves only TLS, with client certificates from the
CA (``serve``'s ``tls``): a ``reader`` may GET, a ``writer`` may also POST;
anyone else gets 403 and changes nothing.  On a Unix socket the file's
permissions are the guard, as before.  Either way a body over
``MAX_BODY`` gets 413 without being read, a malformed request a 4xx, and a
client that stalls is cut off after ``CLIENT_TIMEOUT``: each connection is
served in its own green thread, so none of this holds the controller.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import parse_qs

#: Bytes a posted topology or object may have (a fabric of 40,000
#: endpoints is about 4 MB of YAML).
MAX_BODY = 32 << 20
#: Seconds a client may stall mid-request (and a TLS handshake may take).
CLIENT_TIMEOUT = 10.0


class Refused(Exception):
    """An answer other than 200, raised where the request is read."""

    def __init__(self, status: int, error: str):
        super().__init__(error)
        self.status = status

def listen(address: str):
    """A listening socket for ``address``: a filesystem path (Unix socket)
    or HOST:PORT."""
    import eventlet
    if "/" in address:
        if os.path.exists(address):
            os.unlink(address)                 # left by an earlier controller
        os.makedirs(os.path.dirname(address), exist_ok=True)
        return eventlet.listen(address, family=socket.AF_UNIX)
    host, port = address.rsplit(":", 1)
    return eventlet.listen((host, int(port)))


class Api:
    """WSGI application over the controller's views; ``apply(text, source,
    wait)`` hands a posted topology to the controller core's queue and
    returns its answer, (status, body)."""

    #: GET path -> the ``Views`` method whose dict is the JSON answer.
    DESCRIBE = {"/topology": "describe_topology", "/switches": "describe_switches",
                "/fabric": "describe_fabric", "/flows": "describe_flows",
                "/groups": "describe_groups", "/desired": "describe_desired",
                "/diff": "describe_diff", "/status": "describe_status"}

    def __init__(self, views, apply, change=None):
        self.views = views
        self.apply = apply
        self.change = change

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        try:
            _allowed(environ, method)
            if method == "GET" and path in self.DESCRIBE:
                status, body = 200, getattr(self.views, self.DESCRIBE[path])()
            elif (method, path) == ("GET", "/metrics"):
                data = self.views.metrics().encode()
                start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"),
                                          ("Content-Length", str(len(data)))])
                return [data]
            elif (method, path) == ("GET", "/trace"):
                q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                status, body = self._trace(q)
            elif (method, path) == ("POST", "/apply"):
                text = _body(environ)                          # bytes: the loader names a bad one
                name = environ.get("HTTP_X_NSGRE_SOURCE", "posted.yaml")
                status, body = self.apply(text, name, _wait(environ))
            elif (method, path) == ("POST", "/objects") and self.change is not None:
                status, body = self._object(environ)
            else:
                status, body = 404, {"error": f"no such resource: {method} {path}"}
        except Refused as exc:
            status, body = exc.status, {"ok": False, "error": str(exc)}
        except Exception as exc:                  # the API must answer, not hang up
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(body, indent=1).encode()
        start_response(f"{status} {http.client.responses.get(status, '')}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(data)))])
        return [data]

    def _object(self, environ) -> tuple[int, dict]:
        """POST /objects: {"kind": "endpoint"|"network"|"host", "action":
        "add"|"del", "name": ..., "body": {the fields a file would hold}}."""
        from topology.edit import Change
        data = _body(environ)
        try:
            req = json.loads(data)
            kind, action, name = req["kind"], req["action"], req["name"]
            if kind not in ("endpoint", "network", "host") or action not in ("add", "del") \
                    or not isinstance(name, str) or not isinstance(req.get("body", {}), dict):
                raise ValueError("kind endpoint|network|host, action add|del, name a string")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return 400, {"ok": False, "error": f"not an object change: {exc}"}
        change = Change(kind + "s", name, None if action == "del" else req.get("body", {}))
        return self.change(f"nsgre {kind} {action} {name}", change)

    def _trace(self, q: dict) -> tuple[int, dict]:
        from nsgre_tools.trace import TraceError
        from nsgre_tools.simulator import SimulationError
        try:
            vlan = int(q["vlan"]) if q.get("vlan") else None
            return 200, self.views.describe_trace(q["src"], q["dst"], q.get("proto", "icmp"), vlan)
        except (KeyError, ValueError, TraceError, SimulationError) as exc:
            return 400, {"error": str(exc)}


def _allowed(environ, method: str) -> None:
    """Over TLS, who may do what: a reader reads, a writer also writes."""
    if "nsgre.identity" not in environ:
        return                                   # a Unix socket: its permissions decide
    who = environ["nsgre.identity"]
    if who is None or who.kind not in ("reader", "writer"):
        raise Refused(403, f"{who or 'a certificate naming no nsgre identity'} may not use "
                      "the API (nsgre pki client NAME --role read|write)")
    if method != "GET" and not who.may_write:
        raise Refused(403, f"{who} may only read (a writer's certificate changes the fabric)")


def _body(environ) -> bytes:
    """The request's body, refused before it is read when too large."""
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        raise Refused(411, "a body needs a Content-Length")
    try:
        length = int(raw)
    except ValueError:
        raise Refused(400, f"Content-Length {raw!r} is not a number") from None
    if length < 0:
        raise Refused(400, f"Content-Length {length} is negative")
    if length > MAX_BODY:
        raise Refused(413, f"a body of {length} bytes: at most {MAX_BODY}")
    data = environ["wsgi.input"].read(length)
    if len(data) != length:
        raise Refused(400, f"the body ended after {len(data)} of {length} bytes")
    return data


def _wait(environ) -> float | None:
    q = parse_qs(environ.get("QUERY_STRING", ""))
    if "wait" not in q:
        return None
    try:
        wait = float(q["wait"][0])
    except ValueError:
        raise Refused(400, f"wait={q['wait'][0]!r}: seconds, a number") from None
    if not 0 <= wait <= 3600:
        raise Refused(400, f"wait={wait}: between 0 and 3600 seconds")
    return wait


def serve(views, apply, address: str, change=None, tls=None, refused=None):
    """Serve the API on ``address``; ``tls``: the controller's credentials
    (``nsgre_core.credentials.Credentials``), required on TCP; ``refused(address,
    why)`` is told of every failed handshake."""
    import eventlet.wsgi
    app = Api(views, apply, change)
    if "/" in address:
        eventlet.wsgi.server(listen(address), app, log_output=False,
                             socket_timeout=CLIENT_TIMEOUT, protocol=_protocol())
        return
    if tls is None:
        raise ValueError(f"the API on TCP ({address}) serves only TLS: give the controller "
                         "its credentials (--tls DIR)")
    eventlet.wsgi.server(listen(address), app, log_output=False, socket_timeout=CLIENT_TIMEOUT,
                         protocol=_tls_protocol(tls, refused or (lambda *_: None)))


def _protocol():
    """eventlet's HTTP protocol, its error log made safe: answering a
    malformed request on a Unix socket, it formats the client's address,
    which is an empty string there, and dies with a traceback."""
    import logging
    import eventlet.wsgi
    log = logging.getLogger("nsgre")

    class Protocol(eventlet.wsgi.HttpProtocol):
        def address_string(self):
            address = self.client_address
            return str(address[0]) if isinstance(address, tuple) and address else "unix"

        def log_message(self, format, *args):
            log.debug("nsgre: API %s: %s", self.address_string(), format % args)
    return Protocol


def _tls_protocol(credentials, refused):
    """eventlet's HTTP protocol with a TLS handshake first, in the
    connection's own green thread (a slow one holds nothing else), and the
    client's identity in the environ (``nsgre.identity``)."""
    import ssl
    import eventlet.wsgi
    from nsgre_core import identity
    from nsgre_core.credentials import ServerContext
    contexts = ServerContext(credentials)
    contexts.get()

    class TlsProtocol(_protocol()):
        def setup(self):
            self.identity, self.rejected = None, False
            self.request.settimeout(CLIENT_TIMEOUT)
            try:
                self.request = contexts.get().wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.rejected = True
                refused(self.client_address, getattr(exc, "verify_message", None) or str(exc))
                self.request.close()
                return
            self.identity = identity.from_peercert(self.request.getpeercert())
            super().setup()

        def handle(self):
            if not self.rejected:
                super().handle()

        def finish(self):
            if not self.rejected:
                super().finish()

        def get_environ(self, *args, **kwargs):
            env = super().get_environ(*args, **kwargs)
            env["nsgre.identity"] = self.identity
            return env
    return TlsProtocol
