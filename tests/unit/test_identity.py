"""Who a certificate says its holder is, and what that allows: the
identity layout (``nsgre_core.identity``) and the CA that writes it
(``nsgre_tools.pki``), read back as Python's ``ssl`` reads a peer."""

import datetime
import ssl

import pytest
from cryptography import x509
from hypothesis import given, strategies as st

import topology
from nsgre_core import identity
from nsgre_core.credentials import Credentials, CredentialsError
from nsgre_tools.pki import Pki, PkiError

SEED = topology.load()
KVM1, KVM2 = SEED.host("kvm1").dpid, SEED.host("kvm2").dpid


def peercert(*uris):
    """A verified peer certificate as ``ssl.SSLSocket.getpeercert()`` gives it."""
    return {"subject": ((("commonName", "x"),),),
            "subjectAltName": tuple(("URI", u) for u in uris)}


@given(st.sampled_from(identity.KINDS), st.from_regex(identity.NAME, fullmatch=True))
def test_an_identity_reads_back_from_its_uri(kind, name):
    who = identity.make(kind, name)
    assert identity.from_uri(who.uri()) == who
    assert identity.from_peercert(peercert(who.uri())) == who


@pytest.mark.parametrize("cert", [None, {}, peercert(), peercert("urn:other:host:kvm1"),
                                  peercert("urn:nsgre:king:kvm1"), peercert("urn:nsgre:host:"),
                                  peercert("urn:nsgre:host:kvm1", "urn:nsgre:host:kvm2")])
def test_a_certificate_naming_no_identity_or_two_names_none(cert):
    assert identity.from_peercert(cert) is None


def test_a_host_may_be_its_own_switch_only():
    kvm1 = identity.make("host", "kvm1")
    assert identity.switch_refusal(kvm1, KVM1, SEED) is None
    assert "presented host kvm2's datapath id" in identity.switch_refusal(kvm1, KVM2, SEED)
    assert "an unknown datapath id" in identity.switch_refusal(kvm1, 0xdead, SEED)
    assert "not in the topology" in identity.switch_refusal(identity.make("host", "kvm9"),
                                                            KVM1, SEED)
    for kind in ("controller", "reader", "writer"):
        assert "not a host's" in identity.switch_refusal(identity.make(kind, "kvm1"), KVM1, SEED)
    assert "names no nsgre identity" in identity.switch_refusal(None, KVM1, SEED)


def test_only_a_writer_may_change_the_topology():
    assert [k for k in identity.KINDS if identity.make(k, "a").may_write] == ["writer"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.init()
    return p


def test_an_issued_certificate_names_its_holder_and_verifies_against_the_ca(pki):
    out = pki.issue("host", "kvm1")
    cred = Credentials(out)
    assert cred.identity == identity.make("host", "kvm1")
    assert (out / "key.pem").stat().st_mode & 0o077 == 0
    ctx = ssl.create_default_context(cafile=str(cred.ca))
    ctx.load_cert_chain(cred.cert, cred.key)               # key and certificate agree
    cert = x509.load_pem_x509_certificate(cred.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(cred.ca.read_bytes())
    cert.verify_directly_issued_by(ca)


def test_a_name_holding_a_live_certificate_is_refused_another_until_revoked(pki):
    pki.issue("controller", "c1")
    with pytest.raises(PkiError, match="holds certificate .* already"):
        pki.issue("controller", "c1")
    serials = pki.revoke("controller", "c1")
    crl = x509.load_pem_x509_crl((pki.ca_dir / "crl.pem").read_bytes())
    assert {f"{r.serial_number:x}" for r in crl} >= set(serials)
    assert (pki.dir / "controller" / "c1" / "crl.pem").read_bytes() == \
        (pki.ca_dir / "crl.pem").read_bytes()                  # copied beside the key
    pki.issue("controller", "c1")                              # a new one may be issued now
    with pytest.raises(PkiError, match="no live certificate"):
        pki.revoke("writer", "nobody")


@pytest.mark.parametrize("kind,name,error", [("king", "a", "kind 'king'"),
                                            ("host", "a/b", "name 'a/b'"),
                                            ("host", "", "name ''")])
def test_a_bad_kind_or_name_is_refused_and_nothing_is_written(pki, kind, name, error):
    before = pki.issued()
    with pytest.raises(PkiError, match=error):
        pki.issue(kind, name)
    assert pki.issued() == before


def test_credentials_missing_a_file_or_an_identity_are_refused_naming_them(pki, tmp_path):
    out = pki.issue("writer", "ops")
    (out / "ca.pem").unlink()
    with pytest.raises(CredentialsError, match="missing ca.pem"):
        Credentials(out)
    with pytest.raises(PkiError, match="no CA here"):
        Pki(tmp_path / "none").issue("host", "kvm1")


def test_an_expired_certificate_is_written_as_asked(pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    out = pki.issue("host", "old", not_before=now - datetime.timedelta(days=3),
                    not_after=now - datetime.timedelta(days=1))
    assert Credentials(out).not_after < now
