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
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import parse_qs

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
                length = int(environ.get("CONTENT_LENGTH") or 0)
                text = environ["wsgi.input"].read(length)      # bytes: the loader names a bad one
                name = environ.get("HTTP_X_NSGRE_SOURCE", "posted.yaml")
                q = parse_qs(environ.get("QUERY_STRING", ""))
                wait = float(q["wait"][0]) if "wait" in q else None
                status, body = self.apply(text, name, wait)
            elif (method, path) == ("POST", "/objects") and self.change is not None:
                status, body = self._object(environ)
            else:
                status, body = 404, {"error": f"no such resource: {method} {path}"}
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
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            req = json.loads(environ["wsgi.input"].read(length))
            kind, action, name = req["kind"], req["action"], req["name"]
            if kind not in ("endpoint", "network", "host") or action not in ("add", "del") \
                    or not isinstance(name, str) or not isinstance(req.get("body", {}), dict):
                raise ValueError("kind endpoint|network|host, action add|del, name a string")
        except (ValueError, KeyError, TypeError) as exc:
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


def serve(views, apply, address: str, change=None):
    import eventlet.wsgi
    eventlet.wsgi.server(listen(address), Api(views, apply, change), log_output=False)
