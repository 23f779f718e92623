"""Raw HTTP over TLS against a controller's API, from inside the namespace
the TLS tests create (run there with ``ip netns exec``): what the CLI would
never send.  Prints one JSON line: what came back.

    api_probe.py ADDRESS CREDENTIALS|- CASE|/PATH
"""

import json
import socket
import ssl
import sys
import time

from nsgre_core.credentials import Credentials, client_context


def connect(address: str, creds: str):
    host, port = address.rsplit(":", 1)
    if creds == "-":                            # no client certificate at all
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    else:
        ctx = client_context(Credentials(creds))
    raw = socket.create_connection((host, int(port)), timeout=30)
    return ctx.wrap_socket(raw)


def exchange(address, creds, request: bytes) -> dict:
    try:
        sock = connect(address, creds)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    except (ssl.SSLError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else 0
    return {"status": status, "body": body.decode(errors="replace")}


def request(method, path, body=b"", length: int | None = None, with_length=True):
    """A request; ``length``: the Content-Length to claim (default: the body's)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: nsgre", "Connection: close"]
    if with_length and method == "POST":
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


CASES = {
    "get": lambda: request("GET", "/status"),
    "post-objects": lambda: request("POST", "/objects", b'{"kind": "network", "action": '
                                    b'"add", "name": "net77", "body": {}}'),
    "huge": lambda: request("POST", "/apply", b"tunnel: gre\n", length=40 << 20),
    "no-length": lambda: request("POST", "/apply", b"", with_length=False),
    "bad-wait": lambda: request("POST", "/apply?wait=soon", b"x"),
    "not-utf8": lambda: request("POST", "/apply", b"tunnel: \xff\xfe\n"),
    "bad-json": lambda: request("POST", "/objects", b"{kind: ["),
    "bad-yaml": lambda: request("POST", "/apply", b"hosts: [a, {"),
}


def slow(address, creds) -> dict:
    """Half a request line, then silence: the answer of another client
    meanwhile, and whether the server cut the slow one off."""
    sock = connect(address, creds)
    sock.sendall(b"GET /sta")
    other = exchange(address, creds, CASES["get"]())
    started = time.monotonic()
    sock.settimeout(60)
    try:
        cut = sock.recv(65536) == b""
    except (ssl.SSLError, OSError):
        cut = True
    return {"other": other.get("status"), "cut": cut,
            "cut_after": round(time.monotonic() - started, 1)}


def garbage_record(address, creds) -> dict:
    """A TLS connection with a good certificate, then a record of noise
    written under TLS: the server's TLS layer fails from then on."""
    import os
    sock = connect(address, creds)
    os.write(sock.fileno(), b"\x17\x03\x03\x00\x20" + os.urandom(32))
    sock.settimeout(10)
    try:
        closed = sock.recv(4096) == b""
    except (ssl.SSLError, OSError):
        closed = True
    return {"closed": closed}


def main() -> None:
    address, creds, case = sys.argv[1:4]
    if case == "garbage-record":
        result = garbage_record(address, creds)
    elif case == "slow":
        result = slow(address, creds)
    elif case.startswith("/"):
        result = exchange(address, creds, request("GET", case))
    else:
        result = exchange(address, creds, CASES[case]())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
