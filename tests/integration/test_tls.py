"""OpenFlow with TLS, each switch bound to the host its certificate names:
a real controller and real ``ovs-vswitchd`` switches (dummy datapaths, in
one namespace this module creates), certificates from ``nsgre pki``.  The
impostors are real switches too: a host's certificate presenting another
host's datapath id, a certificate from another CA, a revoked one and an
expired one."""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import topology
from nsgre_tools.pki import Pki
from osken_apps import ovsdb

NAMESPACE = f"nsgre-tls-{os.getpid()}"
ADDRESS = "198.18.252.1"
PORT = 16653
API = f"{ADDRESS}:16654"
PROBE = Path(__file__).resolve().parent / "api_probe.py"
TARGET = f"ssl:{ADDRESS}:{PORT}"
COOKIE = "cookie=0x4e00000000000000/0xff00000000000000"
SEED = topology.load()


def run(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=check)


def in_ns(*cmd):
    return ["ip", "netns", "exec", NAMESPACE, *map(str, cmd)]


class Switch:
    """One host's Open vSwitch: its own ovsdb-server and ``ovs-vswitchd
    --enable-dummy``, br-int prepared as ``nsgre prepare-host --tls`` does,
    stopped by the PIDs it recorded."""

    def __init__(self, directory: Path, host: str, credentials, dpid: int | None = None):
        self.dir, self.host = directory, host
        self.dir.mkdir(parents=True)
        self.pids = []
        env = {**os.environ, "OVS_RUNDIR": str(self.dir), "OVS_LOGDIR": str(self.dir),
               "OVS_DBDIR": str(self.dir)}
        d = self.dir
        try:
            run("ovsdb-tool", "create", d / "conf.db", "/usr/share/openvswitch/vswitch.ovsschema")
            subprocess.run(in_ns("ovsdb-server", d / "conf.db", f"--remote=punix:{d}/db.sock",
                                 f"--pidfile={d}/ovsdb.pid", f"--unixctl={d}/ovsdb.ctl",
                                 f"--log-file={d}/ovsdb.log", "--detach"), env=env, check=True)
            self.pids.append(int((d / "ovsdb.pid").read_text()))
            run("ovs-vsctl", f"--db={self.db}", "--no-wait", "init")
            subprocess.run(in_ns("ovs-vswitchd", self.db, "--enable-dummy",
                                 "--disable-system-route", f"--pidfile={d}/vs.pid",
                                 f"--unixctl={d}/vs.ctl", f"--log-file={d}/vs.log", "--detach"),
                           env=env, check=True)
            self.pids.append(int((d / "vs.pid").read_text()))
            ovsdb.prepare_host(SEED, host, self.db, TARGET, datapath_type="dummy",
                               tls=credentials)
            if dpid is not None:          # an impostor: another host's datapath id
                run("ovs-vsctl", f"--db={self.db}", "set", "bridge", "br-int",
                    f"other-config:datapath-id={dpid:016x}")
        except BaseException:
            self.stop()
            raise

    @property
    def db(self):
        return f"unix:{self.dir}/db.sock"

    def flows(self) -> list[str]:
        out = run("ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows",
                  f"unix:{self.dir}/br-int.mgmt", COOKIE).stdout
        return [line for line in out.splitlines() if "cookie=" in line]

    def connected(self) -> bool:
        out = run("ovs-vsctl", f"--db={self.db}", "--columns=is_connected", "list",
                  "controller").stdout
        return "true" in out

    def stop(self):
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
        self.pids = []


def until(what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout} s: {what.__doc__ or what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    """The seed's two hosts over TLS, and the controller they trust."""
    tmp = tmp_path_factory.mktemp("tls")
    pki = Pki(tmp / "pki")
    pki.init()
    for host in SEED.hosts:
        pki.issue("host", host)
    controller_dir = pki.issue("controller", "c1")
    for kind, name in (("reader", "observer"), ("writer", "ops")):
        pki.issue(kind, name)
    run("ip", "netns", "add", NAMESPACE)
    switches, proc = [], None
    try:
        run(*in_ns("ip", "link", "set", "lo", "up"))
        run(*in_ns("ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"))
        log = open(tmp / "controller.log", "w")
        proc = subprocess.Popen(in_ns(sys.executable, "-m", "nsgre_tools.cli", "controller",
                                      "--tls", controller_dir, "--listen", ADDRESS,
                                      "--port", PORT, "--api", API),
                                stdout=log, stderr=subprocess.STDOUT)
        until(lambda: "OpenFlow with TLS on" in (tmp / "controller.log").read_text())
        for host in SEED.hosts:
            switches.append(Switch(tmp / host, host, credentials(pki, "host", host)))
        for sw in switches:
            until(lambda sw=sw: len(sw.flows()) > 0)
        yield {"pki": pki, "tmp": tmp, "switches": switches,
               "log": tmp / "controller.log", "proc": proc}
    finally:
        for sw in switches:
            sw.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        run("ip", "netns", "delete", NAMESPACE, check=False)


def credentials(pki, kind, name):
    from nsgre_core.credentials import Credentials
    return Credentials(pki.dir / kind / name)


def probe(fab, case, creds=("reader", "observer")) -> dict:
    """What the API answers ``case`` (api_probe.py), asked from inside the
    namespace with ``creds`` (kind, name; None: no certificate)."""
    who = "-" if creds is None else str(fab["pki"].dir / creds[0] / creds[1])
    out = run(*in_ns(sys.executable, PROBE, API, who, case)).stdout
    return json.loads(out)


def nsgre(fab, *args, creds=("reader", "observer")):
    return subprocess.run(in_ns(sys.executable, "-m", "nsgre_tools.cli", *args,
                                "--controller", API, "--tls",
                                fab["pki"].dir / creds[0] / creds[1]),
                          capture_output=True, text=True)


def refused(fab, identity: str, reason: str) -> int:
    text = probe(fab, "/metrics")["body"]
    label = f'identity="{identity}",reason="{reason}"'
    found = re.search(r"^nsgre_switches_refused_total\{" + re.escape(label) + r"\} (\d+)",
                      text, re.M)
    return int(found.group(1)) if found else 0


@pytest.fixture
def impostor(fabric):
    made = []

    def start(name, creds, dpid=None):
        sw = Switch(fabric["tmp"] / f"impostor-{name}-{len(made)}", "kvm1", creds, dpid)
        made.append(sw)
        return sw
    yield start
    for sw in made:
        sw.stop()


def genuine_untouched(fab, before):
    """Both real switches still the controller's, on their own datapaths,
    their flows as they were."""
    switches = json.loads(probe(fab, "/switches")["body"])
    return {h: s["datapath"] for h, s in switches.items()} == \
        {h: f"{SEED.host(h).dpid:016x}" for h in SEED.hosts} and snapshot(fab) == before


def snapshot(fab):
    return [sorted(sw.flows()) for sw in fab["switches"]]


def test_each_host_is_programmed_over_tls_with_its_own_certificate(fabric):
    kvm1, kvm2 = fabric["switches"]
    until(lambda: kvm1.connected() and kvm2.connected())     # OVS's status, every few seconds
    answer = probe(fabric, "/switches")
    assert answer["status"] == 200 and sorted(json.loads(answer["body"])) == ["kvm1", "kvm2"]
    assert "ssl" in run("ovs-vsctl", f"--db={kvm1.db}", "get-controller", "br-int").stdout


def test_a_hosts_certificate_presenting_another_hosts_datapath_is_refused_and_sent_nothing(
        fabric, impostor):
    before = snapshot(fabric)
    sw = impostor("stolen", credentials(fabric["pki"], "host", "kvm1"),
                  dpid=SEED.host("kvm2").dpid)
    until(lambda: refused(fabric, "host kvm1", "identity") >= 1)
    log = fabric["log"].read_text()
    assert re.search(r"refused \(host kvm1 presenting datapath %016x\): its certificate names "
                     r"host kvm1 .* but it presented host kvm2's datapath id"
                     % SEED.host("kvm2").dpid, log)
    assert sw.flows() == []
    assert genuine_untouched(fabric, before)        # the real kvm2 was not displaced


def test_a_certificate_from_another_ca_never_completes_the_handshake(fabric, impostor):
    before = snapshot(fabric)
    other = Pki(fabric["tmp"] / "other-pki")
    other.init()
    other.issue("host", "kvm1")
    sw = impostor("other-ca", credentials(other, "host", "kvm1"))
    until(lambda: refused(fabric, "none", "handshake") >= 1)
    assert sw.flows() == []
    assert genuine_untouched(fabric, before)


def test_a_revoked_certificate_is_refused_from_the_next_handshake_on(fabric, impostor):
    pki = fabric["pki"]
    pki.issue("host", "spare")
    pki.revoke("host", "spare")                   # the CRL beside the controller's key too
    before_count = refused(fabric, "none", "handshake")
    sw = impostor("revoked", credentials(pki, "host", "spare"), dpid=SEED.host("kvm2").dpid)
    until(lambda: refused(fabric, "none", "handshake") > before_count)
    assert "certificate revoked" in fabric["log"].read_text()
    assert sw.flows() == []


def test_an_expired_certificate_is_refused(fabric, impostor):
    pki = fabric["pki"]
    now = datetime.datetime.now(datetime.timezone.utc)
    pki.issue("host", "old", not_before=now - datetime.timedelta(days=30),
              not_after=now - datetime.timedelta(days=1))
    before_count = refused(fabric, "none", "handshake")
    sw = impostor("expired", credentials(pki, "host", "old"))
    until(lambda: refused(fabric, "none", "handshake") > before_count)
    assert "certificate has expired" in fabric["log"].read_text()
    assert sw.flows() == []


def version(fab) -> int:
    text = probe(fab, "/metrics")["body"]
    return int(re.search(r"^nsgre_topology_version (\d+)", text, re.M).group(1))


def test_a_reader_reads_and_its_changes_get_403_and_change_nothing(fabric):
    shown = nsgre(fabric, "show")
    assert shown.returncode == 0 and "kvm1: connected" in shown.stdout
    before = version(fabric)
    seed = fabric["tmp"] / "seed.yaml"
    seed.write_text(topology.seed_text())
    refused_apply = nsgre(fabric, "apply", seed)
    assert refused_apply.returncode == 1 and "reader observer may only read" in refused_apply.stderr
    assert probe(fabric, "post-objects")["status"] == 403
    assert version(fabric) == before


def test_a_writer_may_change_the_fabric(fabric):
    seed = fabric["tmp"] / "seed.yaml"
    seed.write_text(topology.seed_text())
    applied = nsgre(fabric, "apply", seed, creds=("writer", "ops"))
    assert applied.returncode == 0, applied.stderr
    assert "applied" in applied.stdout


def test_a_client_without_a_certificate_or_with_a_hosts_gets_nothing(fabric):
    before = int(re.search(r"^nsgre_api_clients_refused_total (\d+)",
                           probe(fabric, "/metrics")["body"], re.M).group(1))
    assert "error" in probe(fabric, "/status", creds=None)
    assert int(re.search(r"^nsgre_api_clients_refused_total (\d+)",
                         probe(fabric, "/metrics")["body"], re.M).group(1)) > before
    answer = probe(fabric, "/status", creds=("host", "kvm1"))
    assert answer["status"] == 403 and "host kvm1 may not use the API" in answer["body"]


@pytest.mark.parametrize("case,status,says", [
    ("huge", 413, "at most"), ("no-length", 411, "Content-Length"),
    ("bad-wait", 400, "wait='soon'"), ("not-utf8", 400, "UTF-8"),
    ("bad-json", 400, "not an object change"), ("bad-yaml", 400, "posted.yaml")])
def test_bad_requests_get_a_clear_4xx_and_change_nothing(fabric, case, status, says):
    before = version(fabric)
    answer = probe(fabric, case, creds=("writer", "ops"))
    assert answer["status"] == status and says in answer["body"], answer
    assert version(fabric) == before


def test_a_client_stalling_mid_request_holds_no_one_else_and_is_cut_off(fabric):
    answer = probe(fabric, "slow")
    assert answer["other"] == 200 and answer["cut"], answer


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_tls_record_of_noise_closes_that_connection_and_holds_nothing_else(fabric):
    # os-ken retries a read that raised a TLS error, for ever, without
    # yielding: one peer's corrupt record would freeze the controller.
    before = snapshot(fabric)
    pid = fabric["proc"].pid
    who = str(fabric["pki"].dir / "host" / "kvm1")
    answer = json.loads(run(*in_ns(sys.executable, PROBE, f"{ADDRESS}:{PORT}", who,
                                   "garbage-record")).stdout)
    assert answer["closed"]
    spent = cpu_seconds(pid)
    time.sleep(2)
    assert cpu_seconds(pid) - spent < 0.5               # not spinning
    assert probe(fabric, "/status")["status"] == 200
    assert genuine_untouched(fabric, before)


def test_the_emulation_over_tls_carries_every_host_on_its_own_certificate(up):
    from conftest import ping
    emu = up(SEED, tls=True)
    assert emu.controller_target == f"ssl:{emu.tls_address()}:6653"
    for host in SEED.hosts:
        assert run("ovs-vsctl", f"--db={emu.ovs[host].db}", "get-controller",
                   "br-int").stdout.strip() == emu.controller_target
        assert f"/pki/host/{host}/cert.pem" in run("ovs-vsctl", f"--db={emu.ovs[host].db}",
                                                   "get-ssl").stdout
        # its OVSDB served to the controller on pssl: at its underlay address
        assert run("ovs-vsctl", f"--db={emu.ovs[host].db}", "get-manager").stdout.strip() == \
            f"pssl:6640:{SEED.host(host).underlay_ip}"
    assert ping("blue", "10.1.1.2").returncode == 0                # across the GRE tunnel
    _, api, log = emu.controller_files(1)
    assert subprocess.run([sys.executable, "-m", "nsgre_tools.cli", "diff", "--controller",
                           str(api)], capture_output=True).returncode == 0
    assert "OpenFlow with TLS on" in log.read_text()
    # the controller read each host's interfaces and marked them, over ssl: only
    emu.wait_ready(20)
    assert "--ovsdb ssl:{underlay_ip}:6640" in " ".join(
        Path(f"/proc/{emu.controller_pid(1)}/cmdline").read_text().split("\0"))
    assert "hung up" not in log.read_text() and "TLS handshake failed" not in log.read_text()


def test_two_controllers_over_tls_follow_the_database_through_its_gates_and_fail_over(up):
    """``--ha 2 --tls``: each controller on its own certificate, the raft
    members' clients (the controllers, the writer that applied the seed)
    through their gates; the master killed, the other is MASTER of both
    switches and programs a change across the tunnel."""
    from conftest import ping
    from test_ha import claimed_at, generations, master
    emu = up(SEED, tls=True, ha=2)
    address = emu.tls_address()
    assert emu.controller_target == f"ssl:{address}:6653,ssl:{address}:6654"
    remotes = "ssl:198.18.254.1:6650,ssl:198.18.254.1:6651,ssl:198.18.254.1:6652"
    for k in (1, 2):
        assert f"--db {remotes} " in " ".join(
            Path(f"/proc/{emu.controller_pid(k)}/cmdline").read_text().split("\0"))
    gates = "".join((emu.db_dir / f"m{m}-gate.log").read_text() for m in (1, 2, 3))
    for who in ("writer emulation", "controller c1", "controller c2"):
        assert f"({who}): reads and writes" in gates, gates
    assert ping("blue", "10.1.1.2").returncode == 0
    k = master(emu)
    other, generation = 3 - k, generations(emu, k)[-1]
    os.kill(emu.controller_pid(k), signal.SIGKILL)
    assert set(claimed_at(emu, other, generation + 1, timeout=10)) == set(SEED.hosts)
    added = subprocess.run([sys.executable, "-m", "nsgre_tools.cli", "endpoint", "add", "teal",
                            "--host", "kvm2", "--kind", "namespace", "--network", "net10",
                            "--ip", "10.1.1.9/24", "--db", emu.db_remotes()],
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    _, api, log = emu.controller_files(other)
    deadline = time.monotonic() + 10
    while subprocess.run([sys.executable, "-m", "nsgre_tools.cli", "diff", "--controller",
                          str(api)], capture_output=True).returncode != 0 or \
            "teal" not in run(sys.executable, "-m", "nsgre_tools.cli", "show", "--controller",
                              str(api)).stdout:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    assert ping("blue", "10.1.1.2").returncode == 0
    assert "TLS handshake failed" not in log.read_text()


def test_a_hosts_ovsdb_must_present_that_hosts_certificate(fabric, tmp_path):
    """An ovsdb-server at kvm1's OVSDB remote showing kvm2's certificate is
    hung up on by the controller's OVSDB client; with kvm1's, it is read."""
    pki = fabric["pki"]
    remote = f"ssl:{ADDRESS}:16641"
    ask = ("import sys; from nsgre_core.credentials import Credentials; "
           "from nsgre_core.identity import Identity; from osken_apps import ovsdb_rpc; "
           "ovsdb_rpc.use(Credentials(sys.argv[1])); "
           "ovsdb_rpc.bind(sys.argv[2], Identity('host', 'kvm1')); "
           "print(ovsdb_rpc.transact(sys.argv[2], [{'op': 'select', 'table': 'Open_vSwitch', "
           "'where': [], 'columns': ['_uuid']}])[0]['rows'] and 'read')")
    for shown, says in (("kvm2", "its certificate names host kvm2, not host kvm1: hung up"),
                        ("kvm1", "read")):
        d = tmp_path / shown
        d.mkdir()
        cred = credentials(pki, "host", shown)
        run("ovsdb-tool", "create", d / "conf.db", "/usr/share/openvswitch/vswitch.ovsschema")
        run(*in_ns("ovsdb-server", d / "conf.db", f"--remote=punix:{d}/db.sock",
                   "--remote=pssl:16641:" + ADDRESS, f"--private-key={cred.key}",
                   f"--certificate={cred.cert}", f"--ca-cert={cred.ca}",
                   f"--pidfile={d}/pid", f"--unixctl={d}/ctl", f"--log-file={d}/log", "--detach"))
        try:
            run("ovs-vsctl", f"--db=unix:{d}/db.sock", "--no-wait", "init")
            asked = run(*in_ns(sys.executable, "-c", ask, pki.dir / "controller" / "c1", remote),
                        check=False)
            assert says in asked.stdout + asked.stderr, asked
        finally:
            os.kill(int((d / "pid").read_text()), signal.SIGTERM)
            until(lambda: not Path(f"/proc/{int((d / 'pid').read_text())}").exists()
                  if (d / "pid").exists() else True)


def cli(*args):
    return subprocess.run(in_ns(sys.executable, "-m", "nsgre_tools.cli", *args),
                          capture_output=True, text=True)


@pytest.fixture
def tls_db(fabric, tmp_path):
    """A standalone topology database serving TLS clients through its gate
    (inactivity probe 1 s), holding the seed; its remote, directory and
    gate log."""
    pki = fabric["pki"]
    db_dir, remote = tmp_path / "db", f"ssl:{ADDRESS}:16640"
    created = cli("db", "create", db_dir, "--tls", pki.dir / "controller" / "c1",
                  "--remote", f"pssl:16640:{ADDRESS}", "--probe", 1000)
    assert created.returncode == 0, created.stderr
    try:
        seed = tmp_path / "seed.yaml"
        seed.write_text(topology.seed_text())
        applied = cli("apply", seed, "--db", remote, "--tls", pki.dir / "writer" / "ops")
        assert applied.returncode == 0, applied.stderr
        yield {"remote": remote, "dir": db_dir, "log": db_dir / "nsgre-gate.log",
               "seed": seed, "tmp": tmp_path}
    finally:
        cli("db", "stop", db_dir)


def grown(tmp_path) -> Path:
    """The seed with net30 more."""
    path = tmp_path / "grown.yaml"
    path.write_text(topology.seed_text().replace("  net20: {key: 20}\n",
                                                 "  net20: {key: 20}\n  net30: {}\n"))
    return path


def db_version(db) -> str:
    return re.search(r"topology: version (\d+)", cli("db", "status", db["dir"]).stdout).group(1)


def follower(fabric, db, name: str, port: int):
    """A controller following the database with controller ``name``'s
    certificate; its process and log."""
    pki = fabric["pki"]
    if not (pki.dir / "controller" / name).is_dir():
        pki.issue("controller", name)
    log = db["tmp"] / f"{name}.log"
    proc = subprocess.Popen(in_ns(
        sys.executable, "-m", "nsgre_tools.cli", "controller", "--db", db["remote"],
        "--tls", pki.dir / "controller" / name, "--listen", ADDRESS, "--port", port,
        "--api", db["tmp"] / f"{name}.sock"), stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, log


def test_the_topology_database_over_tls_serves_certificates_from_its_ca_only(fabric, tls_db):
    pki, remote = fabric["pki"], tls_db["remote"]
    bare = cli("apply", tls_db["seed"], "--db", remote)
    assert bare.returncode == 1 and "needs this program's certificate" in bare.stderr
    other = Pki(tls_db["tmp"] / "other-pki")
    other.init()
    stranger = other.issue("writer", "ops")
    refused_apply = cli("apply", tls_db["seed"], "--db", remote, "--tls", stranger)
    assert refused_apply.returncode == 1 and "TLS handshake failed" in refused_apply.stderr
    # a controller follows it over TLS with its own certificate
    proc, log = follower(fabric, tls_db, "c1", 16655)
    try:
        until(lambda: "lock nsgre_shard_0: granted on ssl:" in log.read_text())
        assert cli("apply", grown(tls_db["tmp"]), "--db", remote, "--tls",
                   pki.dir / "writer" / "ops").returncode == 0
        until(lambda: "reloaded: 2 hosts, 3 networks, 4 endpoints" in log.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "(controller c1): reads and writes" in tls_db["log"].read_text()


def test_a_reader_of_the_database_reads_and_its_changes_are_denied_at_the_gate(fabric, tls_db):
    pki, before = fabric["pki"], db_version(tls_db)
    as_reader = cli("apply", grown(tls_db["tmp"]), "--db", tls_db["remote"], "--tls",
                    pki.dir / "reader" / "observer")
    assert as_reader.returncode == 1
    assert "permission denied reader observer may only read: transact with insert, update " \
        "refused" in as_reader.stderr, as_reader.stderr
    assert db_version(tls_db) == before
    log = tls_db["log"].read_text()
    assert "(reader observer): reads\n" in log and "(reader observer): reader observer may " \
        "only read" in log


def test_a_hosts_certificate_and_a_revoked_one_get_nothing_from_the_database(fabric, tls_db):
    pki, before = fabric["pki"], db_version(tls_db)
    as_host = cli("apply", grown(tls_db["tmp"]), "--db", tls_db["remote"], "--tls",
                  pki.dir / "host" / "kvm1")
    assert as_host.returncode == 1
    pki.issue("writer", "leaver")
    assert cli("apply", tls_db["seed"], "--db", tls_db["remote"], "--tls",
               pki.dir / "writer" / "leaver").returncode == 0      # writes, until revoked
    pki.revoke("writer", "leaver")
    as_revoked = cli("apply", grown(tls_db["tmp"]), "--db", tls_db["remote"], "--tls",
                     pki.dir / "writer" / "leaver")
    assert as_revoked.returncode == 1
    assert db_version(tls_db) == before
    log = tls_db["log"].read_text()
    assert "refused (host kvm1): a host's certificate (kvm1) has no business with the " \
        "topology database" in log
    assert "refused (no nsgre identity): TLS handshake failed: certificate revoked" in log


def test_a_controller_revoked_while_connected_is_cut_off_and_a_frozen_one_loses_its_lock(
        fabric, tls_db):
    pki = fabric["pki"]
    first, first_log = follower(fabric, tls_db, "c2", 16656)
    second = None
    try:
        until(lambda: "lock nsgre_shard_0: granted on ssl:" in first_log.read_text())
        second, second_log = follower(fabric, tls_db, "c3", 16657)
        until(lambda: "lock nsgre_shard_0: queued on ssl:" in second_log.read_text())
        # frozen: silent at the gate for two probes (1 s each), its lock goes to c3
        first.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        until(lambda: "lock nsgre_shard_0: granted on ssl:" in second_log.read_text(), 10)
        handover = time.monotonic() - frozen
        assert re.search(r"\(controller c2\) closed: silent for \d+ ms \(probe 1000 ms\)",
                         tls_db["log"].read_text())
        assert handover < 5, handover
        first.send_signal(signal.SIGCONT)
        # revoked while connected: cut off within the gate's look at the CRL, and refused after
        pki.revoke("controller", "c3")
        until(lambda: "(controller c3): its certificate was revoked" in
              tls_db["log"].read_text(), 5)
        until(lambda: "refused (no nsgre identity): TLS handshake failed: certificate revoked"
              in tls_db["log"].read_text(), 15)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                proc.wait(timeout=10)


def test_a_raft_cluster_talks_to_itself_over_tls(fabric, tmp_path):
    db_dir = tmp_path / "cluster"
    created = cli("db", "create", db_dir, "--cluster", 3, "--address", ADDRESS, "--port", 16700,
                  "--tls", fabric["pki"].dir / "controller" / "c1")
    try:
        assert created.returncode == 0, created.stderr

        def formed():
            """one leader, two followers, every raft address ssl:"""
            status = cli("db", "status", db_dir).stdout
            return status.count(": follower, ") == 2 and status.count(": leader, ") == 1 \
                and status.count(f"raft ssl:{ADDRESS}:") == 3
        until(formed)
    finally:
        cli("db", "stop", db_dir)
