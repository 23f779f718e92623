"""What one party of the fabric holds to speak TLS (a directory ``nsgre pki``
wrote: DIR/KIND/NAME), and the TLS contexts nsgre's listeners and clients
make from it: TLS 1.2 or later, certificates from the CA only, the CRL
checked for the peer's where there is one."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from cryptography import x509

from nsgre_core import identity as ident


class CredentialsError(Exception):
    pass


class Credentials:
    """What one party holds (DIR/kind/name): its key and certificate, the
    CA's certificate and the CRL; checked whole before anything uses them."""

    FILES = ("key.pem", "cert.pem", "ca.pem")

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        missing = [f for f in self.FILES if not (self.dir / f).is_file()]
        if missing:
            raise CredentialsError(f"{self.dir}: missing {', '.join(missing)} "
                           "(a directory nsgre pki host/controller/client wrote)")
        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        except ValueError as exc:
            raise CredentialsError(f"{self.cert}: not a PEM certificate: {exc}") from None
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName) \
            .value.get_values_for_type(x509.UniformResourceIdentifier) \
            if _has_san(cert) else []
        found = [i for i in map(ident.from_uri, uris) if i is not None]
        if len(found) != 1:
            raise CredentialsError(f"{self.cert}: names no nsgre identity (urn:nsgre:KIND:NAME)")
        self.identity = found[0]
        self.not_after = cert.not_valid_after_utc

    key = property(lambda self: self.dir / "key.pem")
    cert = property(lambda self: self.dir / "cert.pem")
    ca = property(lambda self: self.dir / "ca.pem")

    @property
    def crl(self) -> Path | None:
        path = self.dir / "crl.pem"
        return path if path.is_file() else None


def _has_san(cert) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return True
    except x509.ExtensionNotFound:
        return False


def server_context(cred: Credentials) -> ssl.SSLContext:
    """TLS 1.2 or later, a certificate from the CA required, the CRL (if
    any) checked for the peer's."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cred.cert, cred.key)
    ctx.load_verify_locations(cafile=cred.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cred.crl is not None:
        ctx.load_verify_locations(cafile=cred.crl)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def client_context(cred: Credentials) -> ssl.SSLContext:
    """For nsgre's own clients: the CA's certificates only; the server is
    known by the identity in its certificate, not by a host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.load_cert_chain(cred.cert, cred.key)
    ctx.load_verify_locations(cafile=cred.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class ServerContext:
    """A listener's TLS context, made again when the CRL file changes (a
    certificate revoked is refused from the next handshake on)."""

    def __init__(self, credentials: Credentials):
        self.cred = credentials
        self.stamp = None
        self.context = None

    def get(self) -> ssl.SSLContext:
        crl = self.cred.crl
        stamp = os.stat(crl).st_mtime_ns if crl is not None else None
        if self.context is None or stamp != self.stamp:
            self.context, self.stamp = server_context(self.cred), stamp
        return self.context
