"""The CLI's client of the controller's HTTP API (``osken_apps.api``).

Plain ``http.client`` over a Unix socket or TCP: the operator tools never
load os-ken or eventlet.
"""

from __future__ import annotations

import http.client
import json
import socket

from nsgre_core import paths

#: Where the CLI looks for the controller unless told: the run directory's
#: socket, where ``nsgre controller`` and the emulation's controller listen.
DEFAULT = paths.api_socket()


class ApiError(RuntimeError):
    pass


#: This client's credentials (``nsgre_tools.pki.Credentials``): a controller
#: on TCP is reached only with TLS, and only with them (``use``).
_credentials = None


def use(credentials) -> None:
    global _credentials
    _credentials = credentials


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _raw(address: str, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    if address.startswith("unix:"):
        address = address[len("unix:"):]
    if "/" in address:
        conn = _UnixConnection(address, timeout)
    else:
        host, port = address.removeprefix("https://").rsplit(":", 1)
        if _credentials is None:
            raise ApiError(f"controller at {address}: its API on TCP serves only TLS: "
                           "give this client its credentials (--tls DIR, from "
                           "nsgre pki client NAME --role read|write)")
        from nsgre_core.credentials import client_context
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout,
                                           context=client_context(_credentials))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ApiError(f"controller at {address} unreachable: {exc}") from None
    finally:
        conn.close()


def request(address: str, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 30.0) -> tuple[int, dict]:
    """(status, JSON body) from the controller at ``address``."""
    status, data = _raw(address, method, path, body, headers, timeout)
    try:
        return status, json.loads(data or b"{}")
    except ValueError as exc:
        raise ApiError(f"controller at {address}: not JSON: {exc}") from None


def request_text(address: str, path: str) -> str:
    status, data = _raw(address, "GET", path)
    if status != 200:
        raise ApiError(f"controller at {address}: HTTP {status}")
    return data.decode()
