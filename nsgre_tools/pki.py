"""nsgre's certificate authority: one the operator owns, in a directory.

Built on the ``cryptography`` library rather than OVS's ``ovs-pki``:
``ovs-pki`` has no revocation (no CRL), names certificates its own way
and shells out to ``openssl``; here every certificate carries the nsgre
identity it was issued for (``nsgre_core.identity``), a revoked one goes
on a signed CRL the controller checks at every handshake, and a mistake
is a clear error naming the file.

    DIR/ca/key.pem      the CA's private key (0600): keep it off the fabric
    DIR/ca/cert.pem     the CA's certificate: every party trusts it
    DIR/ca/crl.pem      the revoked certificates, signed by the CA
    DIR/ca/issued.json  every certificate issued: serial, identity, expiry, revoked
    DIR/<kind>/<name>/  key.pem (0600), cert.pem, ca.pem and crl.pem: what
                        that party needs, to copy to it whole

Keys are ECDSA P-256 (OpenSSL and OVS handshake with them, and they are
made in a millisecond); certificates are valid for ``days`` from now.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nsgre_core import identity as ident

CA_DAYS = 3650
DAYS = 365


class PkiError(Exception):
    pass


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Whole or not at all; a private key is never readable by others,
    not even for a moment."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.ca_dir = self.dir / "ca"

    # -- the CA ---------------------------------------------------------------
    def init(self, name: str = "nsgre CA", days: int = CA_DAYS) -> Path:
        if (self.ca_dir / "key.pem").exists():
            raise PkiError(f"{self.ca_dir / 'key.pem'}: a CA exists here already")
        self.ca_dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nsgre"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        _write(self.ca_dir / "key.pem", _pem_key(key), private=True)
        _write(self.ca_dir / "cert.pem", _pem(cert))
        self._save_issued([])
        self._write_crl([])
        return self.ca_dir

    def _ca(self):
        try:
            key = serialization.load_pem_private_key((self.ca_dir / "key.pem").read_bytes(),
                                                     None)
            cert = x509.load_pem_x509_certificate((self.ca_dir / "cert.pem").read_bytes())
        except FileNotFoundError as exc:
            raise PkiError(f"{exc.filename}: no CA here (nsgre pki init {self.dir})") from None
        except ValueError as exc:
            raise PkiError(f"{self.ca_dir}: not a CA nsgre can read: {exc}") from None
        return key, cert

    def issued(self) -> list[dict]:
        try:
            return json.loads((self.ca_dir / "issued.json").read_text())
        except FileNotFoundError:
            raise PkiError(f"{self.ca_dir / 'issued.json'}: no CA here "
                           f"(nsgre pki init {self.dir})") from None

    def _save_issued(self, entries: list[dict]) -> None:
        _write(self.ca_dir / "issued.json", (json.dumps(entries, indent=1) + "\n").encode())

    # -- certificates ---------------------------------------------------------------
    def issue(self, kind: str, name: str, days: int = DAYS,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None) -> Path:
        """A key and a certificate for ``kind`` ``name``, in DIR/kind/name
        (with the CA's certificate and CRL beside them); a name already
        issued a certificate not revoked is refused."""
        try:
            who = ident.make(kind, name)
        except ValueError as exc:
            raise PkiError(str(exc)) from None
        ca_key, ca_cert = self._ca()
        entries = self.issued()
        live = [e for e in entries if (e["kind"], e["name"]) == who and not e.get("revoked")]
        if live:
            raise PkiError(f"{who} holds certificate {live[0]['serial']} already "
                           f"(nsgre pki revoke {kind} {name} first)")
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - datetime.timedelta(minutes=5)
        end = not_after or _now() + datetime.timedelta(days=days)
        serial = x509.random_serial_number()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nsgre"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
                    x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(serial).not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, True, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(who.uri())]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        out = self.dir / kind / name
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "key.pem", _pem_key(key), private=True)
        _write(out / "cert.pem", _pem(cert))
        shutil.copyfile(self.ca_dir / "cert.pem", out / "ca.pem")
        shutil.copyfile(self.ca_dir / "crl.pem", out / "crl.pem")
        entries.append({"serial": f"{serial:x}", "kind": kind, "name": name,
                        "not_after": end.isoformat(timespec="seconds"), "revoked": None})
        self._save_issued(entries)
        return out

    def revoke(self, kind: str, name: str) -> list[str]:
        """Revoke every live certificate of ``kind`` ``name``; the CRL is
        signed again and copied to every party's directory here (copy it
        to the controllers: they read it again at each handshake)."""
        entries = self.issued()
        hit = [e for e in entries if (e["kind"], e["name"]) == (kind, name) and not e["revoked"]]
        if not hit:
            raise PkiError(f"{kind} {name}: no live certificate issued here")
        stamp = _now().isoformat(timespec="seconds")
        for e in hit:
            e["revoked"] = stamp
        self._save_issued(entries)
        self._write_crl(entries)
        for crl in self.dir.glob("*/*/crl.pem"):
            shutil.copyfile(self.ca_dir / "crl.pem", crl)
        return [e["serial"] for e in hit]

    def _write_crl(self, entries: list[dict]) -> None:
        ca_key, ca_cert = self._ca()
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                   .last_update(now - datetime.timedelta(minutes=5))
                   .next_update(now + datetime.timedelta(days=CA_DAYS)))
        for e in entries:
            if e.get("revoked"):
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(e["serial"], 16))
                    .revocation_date(datetime.datetime.fromisoformat(e["revoked"])).build())
        _write(self.ca_dir / "crl.pem",
               builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
