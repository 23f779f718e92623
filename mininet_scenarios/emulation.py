"""An emulated fabric: every host of the topology is a mininet node (a
network namespace named after the host) running its own ovsdb-server and
ovs-vswitchd with the userspace datapath; every endpoint is a namespace
named after the endpoint, attached by a veth to its host's ``br-int``; the
hosts' underlay ports meet on a Linux bridge in the ``nsgre-underlay``
namespace, so tunnels are real GRE/VXLAN/Geneve encapsulation.

With ``guests="qemu"`` or ``"libvirt"`` every ``kind: vm`` endpoint is a
real QEMU guest on its host instead (``mininet_scenarios.guests``).  Every
endpoint's interface carries the ``external_ids`` a hypervisor writes
(``iface-id``, ``attached-mac``, ``iface-status``), which the controller
binds endpoints by.

Everything created is written to a state file as it is created (names and
PIDs), so teardown removes exactly that, also from another process
(``--down``) or after a crash.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import topology
from topology import Topology
from osken_apps import ovsdb as ovsdb_mod
from nsgre_core import paths, pipeline

RUN_DIR = paths.run_dir()
# Another run directory (NSGRE_RUN_DIR) gets its own underlay namespace, so a
# benchmark's emulation and the tests' can run side by side (with distinct
# host and endpoint names: those are namespace names too).
def underlay_namespace(run_dir: Path) -> str:
    return "nsgre-underlay" if run_dir == paths.DEFAULT_RUN_DIR \
        else f"nsgre-underlay-{run_dir.name}"


UNDERLAY_NS = underlay_namespace(RUN_DIR)
UNDERLAY_PREFIX = 16            # hosts' underlay addresses share one segment
UNDERLAY_MTU = 1500
#: Guests boot in parallel, CPU-bound: 4 take ~10 s on 2 cores, 8 ~17 s.
GUEST_READY_SECONDS = 180.0


class EmulationError(RuntimeError):
    pass


def run(cmd: list[str], check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise EmulationError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def netns_exec(ns: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return run(["ip", "netns", "exec", ns, *cmd], **kw)


def underlay_port(host: str) -> str:
    """The host's port on the underlay bridge, named after the host."""
    name = f"u-{host}"
    if len(name) <= 15:
        return name
    import hashlib
    return f"u-{host[:6]}-{hashlib.sha256(host.encode()).hexdigest()[:6]}"


def underlay_network(topo: Topology, host: str):
    ip = topo.host(host).underlay_ip
    return ipaddress.ip_interface(f"{ip}/{UNDERLAY_PREFIX if ip.version == 4 else 64}").network


def existing_netns() -> set[str]:
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


#: With several controllers (``--ha``): the raft members' address in the
#: underlay namespace, the socket each serves controllers on (in its own
#: directory) and the inactivity probe there: a frozen master's lock goes to
#: a standby after 1-2 s.
RAFT_IP = "198.18.254.1"
#: With --tls: where each host's OVSDB serves the controller (its underlay address).
HOST_OVSDB_PORT = 6640
#: With --tls: controller k's OpenFlow port (OPENFLOW_TLS_PORT + k - 1), and
#: where the raft members' gates serve controllers (member k: DB_TLS_PORT + k - 1).
OPENFLOW_TLS_PORT = 6653
DB_TLS_PORT = 6650              # raft: 6641-6643
CONTROLLERS_SOCKET = "controllers.sock"
DB_PROBE_MS = 1000


# -- the state file: what this emulation created -----------------------------
class State:
    def __init__(self, run_dir: Path = RUN_DIR):
        self.run_dir = run_dir
        self.path = run_dir / "emulation.json"
        self.data = {"namespaces": [], "processes": [], "files": [], "mode": None,
                     "topology": None}

    @classmethod
    def read(cls, run_dir: Path = RUN_DIR) -> "State | None":
        state = cls(run_dir)
        if not state.path.exists():
            return None
        state.data = json.loads(state.path.read_text())
        return state

    def save(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    def add_namespace(self, name: str):
        self.data["namespaces"].append(name)
        self.save()

    def add_process(self, pid: int, what: str, stop_signal: str = "SIGTERM"):
        """Record a PID with a string its command line must contain, so a
        recycled PID is never killed by mistake, and the signal that ends it
        (an interactive shell ignores SIGTERM)."""
        self.data["processes"].append({"pid": pid, "what": what, "signal": stop_signal})
        self.save()

    def forget_process(self, pid: int):
        """A recorded process that was stopped on purpose (a guest powered off)."""
        self.data["processes"] = [p for p in self.data["processes"] if p["pid"] != pid]
        self.save()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stop_process(pid: int, what: str, stop_signal: str = "SIGTERM", timeout: float = 5.0):
    if what not in _cmdline(pid):
        return
    try:
        os.kill(pid, getattr(signal, stop_signal))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and what in _cmdline(pid):
            time.sleep(0.05)
        if what in _cmdline(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def teardown(run_dir: Path = RUN_DIR) -> bool:
    """Remove what the state file says was created; True if there was any."""
    state = State.read(run_dir)
    if state is None:
        return False
    if state.data.get("guests"):
        from mininet_scenarios import guests
        guests.teardown_hook(state.data, run_dir)
    for proc in reversed(state.data["processes"]):
        _stop_process(proc["pid"], proc["what"], proc.get("signal", "SIGTERM"))
    present = existing_netns()
    for name in reversed(state.data["namespaces"]):
        if name in present:
            run(["ip", "netns", "delete", name], check=False)
    # Only what the emulation itself wrote: a controller started by someone
    # else may keep its sockets here.  (osken.log stays for a post-mortem.)
    shutil.rmtree(run_dir / "hosts", ignore_errors=True)
    shutil.rmtree(run_dir / "db", ignore_errors=True)     # the raft cluster's (--ha)
    shutil.rmtree(run_dir / "pki", ignore_errors=True)    # the CA and certificates (--tls)
    for name in state.data.get("files", []):
        Path(name).unlink(missing_ok=True)
    state.path.unlink(missing_ok=True)
    return True


# -- one host's Open vSwitch --------------------------------------------------
class HostOvs:
    """Paths of one emulated host's private OVS instance."""

    def __init__(self, run_dir: Path, host: str):
        self.host = host
        self.dir = run_dir / "hosts" / host
        self.db = f"unix:{self.dir}/db.sock"

    def controller(self, targets: str) -> str:
        """OVS connects to Unix sockets only inside its own run directory:
        reach a Unix-socket controller through a link placed there (one
        each, for several controllers, comma-separated)."""
        out = []
        for k, target in enumerate(targets.split(",")):
            if not target.startswith("unix:"):
                out.append(target)
                continue
            link = self.dir / ("controller.sock" if k == 0 else f"controller-{k + 1}.sock")
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target[len("unix:"):])
            out.append(f"unix:{link}")
        return ",".join(out)

    def mgmt(self, bridge="br-int") -> str:
        return f"unix:{self.dir}/{bridge}.mgmt"

    def ofctl(self, *args, bridge="br-int", check=True) -> str:
        return run(["ovs-ofctl", "-O", "OpenFlow13", *args[:1], self.mgmt(bridge), *args[1:]],
                   check=check).stdout

    def vsctl(self, *args) -> str:
        return run(["ovs-vsctl", f"--db={self.db}", *args]).stdout

    def appctl(self, *args) -> str:
        return run(["ovs-appctl", "-t", f"{self.dir}/vs.ctl", *args]).stdout

    def start(self, state: State):
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OVS_RUNDIR": str(self.dir), "OVS_LOGDIR": str(self.dir),
               "OVS_DBDIR": str(self.dir)}
        d = self.dir
        run(["ovsdb-tool", "create", f"{d}/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"])
        # as Debian's ovs-ctl starts it: managers and keys from the database
        # (with --tls, prepare-host serves it to the controller on pssl:)
        netns_exec(self.host, ["ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
                               "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                               "--private-key=db:Open_vSwitch,SSL,private_key",
                               "--certificate=db:Open_vSwitch,SSL,certificate",
                               "--ca-cert=db:Open_vSwitch,SSL,ca_cert",
                               f"--pidfile={d}/ovsdb.pid", f"--unixctl={d}/ovsdb.ctl",
                               f"--log-file={d}/ovsdb.log", "--detach"], env=env)
        state.add_process(int((d / "ovsdb.pid").read_text()), f"{d}/")
        run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "init"])
        self.start_switch(state)

    def start_switch(self, state: State):
        d = self.dir
        env = {**os.environ, "OVS_RUNDIR": str(d), "OVS_LOGDIR": str(d), "OVS_DBDIR": str(d)}
        netns_exec(self.host, ["ovs-vswitchd", self.db, f"--pidfile={d}/vs.pid",
                               f"--unixctl={d}/vs.ctl", f"--log-file={d}/vs.log",
                               "--disable-system-route",     # see underlay_route
                               "--detach"], env=env)
        state.add_process(int((d / "vs.pid").read_text()), f"{d}/")

    def underlay_route(self, network):
        """OVS's route to the underlay segment, through br-phy (whose address
        becomes the tunnels' source), given by hand: ovs-vswitchd runs with
        ``--disable-system-route``.  Its copy of the kernel's routing table
        is what lost packets: OVS (3.1; still so upstream) rebuilds it from
        scratch on any link change in the host's namespace (an endpoint's
        veth created, set up, given an MTU, a port joining br-int).  Every
        route it drops takes br-phy's address out of the tunnel-receive map
        until the re-read puts it back, and a flow the revalidators
        re-translate in that window (they do after a port is added) loses its
        tunnel: a packet from the underlay is handed to br-phy's kernel port
        undecapsulated (the kernel answers "ICMP protocol 47 unreachable"),
        a packet to a peer finds no route.  A route added here is never
        flushed.  It lives in the process: again after a restart.

        OVS takes the route's source from its own cache of br-phy's
        addresses, refreshed from netlink notifications: right after the
        address is set it may not be there yet ("Error while inserting
        route"), so the route is given until OVS has the address."""
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.appctl("ovs/route/add", str(network), "br-phy")
                return
            except EmulationError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill_switch(self):
        """SIGKILL this host's ovs-vswitchd (by its pidfile): every flow is gone."""
        pid = int((self.dir / "vs.pid").read_text())
        if f"{self.dir}/" in _cmdline(pid):
            os.kill(pid, signal.SIGKILL)
            while f"{self.dir}/" in _cmdline(pid):
                time.sleep(0.01)


# -- the emulation ------------------------------------------------------------
class Emulation:
    def __init__(self, topo: Topology, run_dir: Path = RUN_DIR, static: bool = False,
                 guests: str = "namespace", ha: int = 0, shards: int = 0, tls: bool = False):
        self.topo = topo
        self.tls = tls                # OpenFlow over TLS, every host its own certificate
        self.run_dir = run_dir
        self.static = static
        self.ha = ha                  # controllers following a raft cluster (0: one, on the file)
        self.shards = shards          # with ha: the hosts shared out between this many shards
        self.guests = guests          # how kind: vm endpoints run: namespace | qemu | libvirt
        self.state = State(run_dir)
        self.underlay = underlay_namespace(run_dir)
        self.ovs = {h: HostOvs(run_dir, h) for h in topo.hosts}
        self.net = None      # mininet.net.Mininet, for --cli
        self.controller_target: str | None = None
        self._vms = None

    @property
    def vms(self):
        """The real guests (``mininet_scenarios.guests.Guests``)."""
        if self._vms is None:
            from mininet_scenarios.guests import Guests
            self._vms = Guests(self)
        return self._vms

    def is_guest(self, ep) -> bool:
        """Whether endpoint ``ep`` runs as a real guest (not a namespace)."""
        return ep.kind == "vm" and self.guests != "namespace"

    def guest_handles(self) -> dict:
        """Endpoint name -> ``guests.Guest`` for every real guest."""
        return self.vms.all() if self.guests != "namespace" else {}

    # namespaces ---------------------------------------------------------
    def _names(self) -> list[str]:
        return [self.underlay, *self.topo.hosts,
                *(e.name for e in self.topo.endpoints.values() if not self.is_guest(e))]

    def _check_names_free(self):
        names = self._names()
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise EmulationError("each host and endpoint becomes a namespace of its name; "
                                 "these names are used twice: " + ", ".join(clash))
        taken = existing_netns() & set(names)
        if taken:
            raise EmulationError(
                "network namespaces already exist and were not created by this emulation: "
                + ", ".join(sorted(taken)) + " (remove them, or rename those hosts/endpoints)")

    def _node(self, name: str):
        """A mininet host node whose namespace is also reachable as
        ``ip netns exec NAME``."""
        node = self.net.addHost(name, ip=None, inNamespace=True)
        self.state.add_process(node.pid, "mininet:", "SIGHUP")
        run(["ip", "netns", "attach", name, str(node.pid)])
        self.state.add_namespace(name)
        netns_exec(name, ["ip", "link", "set", "lo", "up"])
        return node

    def up(self, controller: str | None):
        """Build everything; on any failure remove what was built and raise."""
        from mininet.net import Mininet
        if self.static and len(self.topo.hosts) != 2:
            raise EmulationError("--static reproduces the source post's two-host GRE trunk; "
                                 f"this topology has {len(self.topo.hosts)} hosts")
        if self.guests not in ("namespace", "qemu", "libvirt"):
            raise EmulationError(f"--guests {self.guests}: one of namespace, qemu, libvirt")
        if self.tls and (self.static or controller):
            raise EmulationError("--tls runs its own controllers: not with --static or "
                                 "--controller")
        teardown(self.run_dir)          # whatever a crashed run left
        self._check_names_free()
        self.state.data.update(mode="static" if self.static else "nsgre",
                               topology=self.topo.source, ha=self.ha, shards=self.shards)
        self.state.save()
        try:
            if self.guests != "namespace":
                self.vms.prepare()      # refuses what cannot be a guest; builds the image
            self.net = Mininet(build=False, controller=None, ipBase="198.19.255.0/24")
            self._underlay()
            if self.tls:
                self._pki()
            if not self.static:
                self.controller_target = controller or (
                    self._start_ha() if self.ha else self._start_controller())
                self.state.data["controller"] = self.controller_target
                self.state.save()
            for host in self.topo.hosts:
                self._host(host)
            for ep in self.topo.endpoints.values():
                if self.is_guest(ep):
                    self.vms.plug(ep)
                else:
                    self._endpoint(ep)
            if self.static:
                self._static_config()
            self._resolve_underlay()
            if self.guests != "namespace":
                self.vms.boot_all()     # all at once: they boot in parallel
        except BaseException:
            self.down()
            raise

    def down(self):
        teardown(self.run_dir)
        self.net = None

    def controller_files(self, k: int = 1) -> tuple[Path, Path, Path]:
        """Controller ``k``'s OpenFlow socket, API socket and log."""
        suffix = "" if k == 1 else f"-{k}"
        return (self.run_dir / f"osken{suffix}.sock", self.run_dir / f"api{suffix}.sock",
                self.run_dir / f"osken{suffix}.log")

    def preferred(self, k: int) -> list[int]:
        """The shards controller ``k`` is master of at once (the others'
        backup): every ``ha``-th, from its own."""
        return [n for n in range(self.shards) if n % self.ha == k - 1]

    def tls_address(self):
        """With --tls, where the controller listens: the last address of the
        first host's underlay network, on the underlay namespace's bridge, so
        every host reaches it through its br-phy as a real host reaches its
        controllers (nothing leaves namespaces the emulation made)."""
        return underlay_network(self.topo, next(iter(self.topo.hosts)))[-2]

    def _pki(self):
        """The emulation's own CA: a certificate per host and per controller
        (c1, c2...), and a writer's for applying the topology to the
        database; the controllers' address on the underlay bridge."""
        from nsgre_tools.pki import Pki
        pki = Pki(self.run_dir / "pki")
        pki.init(name="nsgre emulation CA")
        for host in self.topo.hosts:
            pki.issue("host", host)
        for k in range(1, max(1, self.ha) + 1):
            pki.issue("controller", f"c{k}")
        pki.issue("writer", "emulation")
        first = next(iter(self.topo.hosts))
        netns_exec(self.underlay, ["ip", "addr", "add", f"{self.tls_address()}/"
                                   f"{underlay_network(self.topo, first).prefixlen}",
                                   "dev", "br0"])

    def host_credentials(self, host: str):
        from nsgre_core.credentials import Credentials
        return Credentials(self.run_dir / "pki" / "host" / host)

    def _start_controller(self, k: int = 1, database: str | None = None) -> str:
        sock, api, log_path = self.controller_files(k)
        log = open(log_path, "w")
        prefix, listen = [], ["--listen", str(sock)]
        if self.tls:
            prefix = ["ip", "netns", "exec", self.underlay]
            listen = ["--listen", str(self.tls_address()), "--port",
                      str(OPENFLOW_TLS_PORT + k - 1),
                      "--tls", str(self.run_dir / "pki" / "controller" / f"c{k}")]
        if database:
            topo_args = ["--db", database]
            if self.shards:
                topo_args += ["--prefer", ",".join(map(str, self.preferred(k)))]
        else:
            topo_args = [] if self.topo.source == "seed.yaml" else ["--topology", self.topo.source]
        hosts_db = f"ssl:{{underlay_ip}}:{HOST_OVSDB_PORT}" if self.tls else \
            f"unix:{self.run_dir}/hosts/{{host}}/db.sock"
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "nsgre_tools.cli", "controller", *topo_args,
             *listen, "--api", str(api), "--ovsdb", hosts_db],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.state.add_process(proc.pid, "nsgre_tools.cli")
        self.state.data.setdefault("controllers", {})[str(k)] = proc.pid
        self.state.data["files"] += [str(sock), str(api)]
        self.state.save()
        deadline = time.monotonic() + 20
        while not (api.exists() and "OpenFlow with TLS on" in log_path.read_text()
                   if self.tls else sock.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EmulationError(f"controller did not start; see {log_path}:\n"
                                     + log_path.read_text()[-2000:])
            time.sleep(0.1)
        return f"ssl:{self.tls_address()}:{OPENFLOW_TLS_PORT + k - 1}" if self.tls \
            else f"unix:{sock}"

    def controller_pid(self, k: int = 1) -> int | None:
        return self.state.data.get("controllers", {}).get(str(k))

    def restart_controller(self, k: int) -> None:
        """Start controller ``k`` again (after a test killed it): following
        the database, as it was started (several controllers) or on the file."""
        self._start_controller(k, self.db_remotes(controllers=True) if self.ha else None)

    @property
    def db_dir(self) -> Path:
        return self.run_dir / "db"

    def db_remotes(self, controllers: bool = False) -> str:
        """The raft members' sockets: each one's own (``nsgre apply --db``),
        or the one every member serves for controllers (probed; with --tls
        its gate on ``RAFT_IP``)."""
        from nsgre_tools import database
        members = database.members(self.db_dir)
        if controllers and self.tls:
            return ",".join(f"ssl:{RAFT_IP}:{DB_TLS_PORT + k}" for k in range(len(members)))
        return ",".join(f"unix:{m.rundir / CONTROLLERS_SOCKET}" if controllers
                        else f"unix:{m.sock}" for m in members)

    def _start_ha(self) -> str:
        """A 3-member raft cluster holding the topology (its members in the
        underlay namespace, talking raft on ``RAFT_IP``), and ``ha``
        controllers following it, each its own process; every controller's
        target, comma-separated, for every host's bridge."""
        from nsgre_tools import database
        cli = [sys.executable, "-m", "nsgre_tools.cli"]
        netns_exec(self.underlay, ["ip", "link", "set", "lo", "up"])
        netns_exec(self.underlay, ["ip", "addr", "add", f"{RAFT_IP}/32", "dev", "lo"])
        pki = self.run_dir / "pki"
        tls = ["--tls", str(pki / "controller" / "c1"), "--remote",
               f"pssl:{DB_TLS_PORT}:{RAFT_IP}", "--probe", str(DB_PROBE_MS)] if self.tls else []
        try:
            netns_exec(self.underlay, [*cli, "db", "create", str(self.db_dir), "--cluster", "3",
                                       "--address", RAFT_IP, *tls])
        finally:
            for member in database.members(self.db_dir):
                pid = database.pid(member)
                if pid is not None:
                    self.state.add_process(pid, f"{member.db}")
                gate = database.gate_pid(member)
                if gate is not None:
                    self.state.add_process(gate, "nsgre_tools.database_gate")
        source = self.run_dir / "topology.yaml"
        source.write_bytes(topology.seed_text().encode() if self.topo.source == "seed.yaml"
                           else Path(self.topo.source).read_bytes())
        self.state.data["files"].append(str(source))
        shards = ["--shards", str(self.shards)] if self.shards else []
        remotes = self.db_remotes(controllers=True)
        if self.tls:        # a writer's certificate, through the gates, as an operator would
            netns_exec(self.underlay, [*cli, "apply", str(source), "--db", remotes, "--tls",
                                       str(pki / "writer" / "emulation"), *shards])
        else:
            run([*cli, "apply", str(source), "--db", self.db_remotes(), *shards])
            run([*cli, "db", "listen", str(self.db_dir), "--target",
                 f"punix:{CONTROLLERS_SOCKET}", "--probe", str(DB_PROBE_MS)])
            deadline = time.monotonic() + 10
            while not all(Path(r[len("unix:"):]).exists() for r in remotes.split(",")):
                if time.monotonic() > deadline:
                    raise EmulationError(f"the database's members do not serve {remotes}")
                time.sleep(0.05)
        return ",".join(self._start_controller(k, remotes) for k in range(1, self.ha + 1))

    def _underlay(self):
        self._node(self.underlay)
        netns_exec(self.underlay, ["ip", "link", "add", "br0", "type", "bridge"])
        netns_exec(self.underlay, ["ip", "link", "set", "br0", "up"])

    def _host(self, host: str):
        h = self.topo.host(host)
        self._node(host)
        ul_port = underlay_port(host)
        self._link(host, "ul0", self.underlay, ul_port)
        netns_exec(self.underlay, ["ip", "link", "set", ul_port, "master", "br0", "up"])
        netns_exec(host, ["ip", "link", "set", "ul0", "up", "mtu", str(UNDERLAY_MTU)])
        self._quiet(host, "ul0")
        ovs = self.ovs[host]
        ovs.start(self.state)
        # The underlay address lives on br-phy, an OVS bridge holding the
        # underlay port, as OVS's userspace tunneling requires.
        ovs.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
                  "fail_mode=secure", "--", "add-port", "br-phy", "ul0")
        self._underlay_flows(host)
        prefix = UNDERLAY_PREFIX if h.underlay_ip.version == 4 else 64
        netns_exec(host, ["ip", "addr", "add", f"{h.underlay_ip}/{prefix}", "dev", "br-phy"])
        netns_exec(host, ["ip", "link", "set", "br-phy", "up"])
        if self.tls:
            # The switch's TCP to the controller crosses the userspace
            # datapath (br-phy) both ways: each kernel sending it must compute
            # its checksums, or the other drops every segment.
            netns_exec(host, ["ethtool", "-K", "br-phy", "tx", "off"], check=False)
            for dev in ("br0", ul_port):
                netns_exec(self.underlay, ["ethtool", "-K", dev, "tx", "off"], check=False)
        ovs.underlay_route(underlay_network(self.topo, host))
        if self.static:
            ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int",
                      "datapath_type=netdev")
        else:
            ovsdb_mod.prepare_host(self.topo, host, ovs.db, ovs.controller(self.controller_target),
                                   datapath_type="netdev",
                                   tls=self.host_credentials(host) if self.tls else None,
                                   manager=f"pssl:{HOST_OVSDB_PORT}:"
                                   f"{h.underlay_ip if h.underlay_ip.version == 4 else f'[{h.underlay_ip}]'}"
                                   if self.tls else None)

    def _underlay_flows(self, host: str):
        """br-phy just joins the underlay port and the host's own stack."""
        ovs = self.ovs[host]
        ovs.ofctl("add-flow", "in_port=LOCAL,actions=output:ul0", bridge="br-phy")
        ovs.ofctl("add-flow", "in_port=ul0,actions=LOCAL", bridge="br-phy")

    def restart_switch(self, host: str):
        """Kill a host's ovs-vswitchd and start it again, as a crash and a
        restart by its supervisor would: OVSDB keeps bridges and ports, every
        flow is gone.  The underlay's own flows are put back here (they are
        the physical network's, not nsgre's); br-int is the controller's job."""
        ovs = self.ovs[host]
        ovs.kill_switch()
        ovs.start_switch(self.state)
        self._underlay_flows(host)
        ovs.underlay_route(underlay_network(self.topo, host))
        self._resolve_underlay([host])

    def _resolve_underlay(self, hosts=None):
        """OVS's userspace tunnels drop a packet to a peer whose underlay
        MAC they have not learnt yet (and learn it only from ARP they happen
        to see); with ARP answered locally the first tunnelled packet would
        be an endpoint's first ping.  Tell each host its peers' br-phy MACs."""
        macs = {}
        for h in self.topo.hosts:
            link = json.loads(netns_exec(h, ["ip", "-j", "link", "show", "br-phy"]).stdout)
            macs[h] = link[0]["address"]
        for h in hosts or self.topo.hosts:
            for peer in self.topo.peers(h):
                self.ovs[h].appctl("tnl/neigh/set", "br-phy", str(peer.underlay_ip),
                                   macs[peer.name])

    @staticmethod
    def _quiet(ns: str, iface: str):
        """OVS's userspace datapath reads a port with a packet socket, but the
        host's kernel sees the same frames: keep it from answering ARP for
        the underlay address with the wrong MAC, and from sending IPv6 noise."""
        netns_exec(ns, ["ip", "link", "set", iface, "arp", "off"])
        netns_exec(ns, ["sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"], check=False)

    @classmethod
    def kept(cls, run_dir: Path = RUN_DIR) -> "Emulation":
        """The emulation a ``--keep`` run left, to change it from here."""
        from mininet.net import Mininet
        import topology as topology_mod
        state = State.read(run_dir)
        if state is None:
            raise EmulationError(f"no kept emulation in {run_dir} (start one with --keep)")
        source = state.data["topology"]
        topo = topology_mod.load(None if source == topology_mod.loader.SEED_NAME else source)
        emu = cls(topo, run_dir, static=state.data["mode"] == "static",
                  guests=state.data.get("guests", {}).get("mode", "namespace"),
                  ha=state.data.get("ha", 0), shards=state.data.get("shards", 0))
        emu.state = state
        emu.controller_target = state.data.get("controller")
        emu.net = Mininet(build=False, controller=None, ipBase="198.19.255.0/24")
        return emu

    def apply(self, new: Topology):
        """Bring the running emulation to ``new`` (loaded with the topology
        in force as ``previous``): namespaces, ports and hosts added or
        removed; every host's tunnel ports refreshed over OVSDB."""
        if self.static:
            raise EmulationError("--apply changes an nsgre emulation, not the static baseline")
        old = self.topo
        if self.guests != "namespace":
            changed = sorted(n for n in set(old.endpoints) | set(new.endpoints)
                             if (n in old.endpoints and old.endpoint(n).kind == "vm"
                                 or n in new.endpoints and new.endpoint(n).kind == "vm")
                             and (old.endpoints.get(n) != new.endpoints.get(n)))
            if changed:
                raise EmulationError("--apply does not add, change or remove real guests "
                                     f"(--guests {self.guests}): {', '.join(changed)}")
        gone_eps = [e for n, e in old.endpoints.items()
                    if n not in new.endpoints or new.endpoint(n) != e]
        new_eps = [e for n, e in new.endpoints.items()
                   if n not in old.endpoints or old.endpoint(n) != e]
        gone_hosts = [h for h in old.hosts if h not in new.hosts]
        new_hosts = [h for h in new.hosts if h not in old.hosts]
        clash = (set(new_hosts) | {e.name for e in new_eps}) - {e.name for e in gone_eps}
        clash &= existing_netns()
        if clash:
            raise EmulationError("namespaces already exist: " + ", ".join(sorted(clash)))
        for ep in gone_eps:
            if ep.host not in gone_hosts:
                with ovsdb_mod.Ovsdb(self.ovs[ep.host].db) as db:
                    db.del_port("br-int", ep.port)
                # Both ends of the veth, now: a namespace is freed lazily.
                netns_exec(ep.host, ["ip", "link", "del", ep.port], check=False)
            self._forget_namespace(ep.name)
        for host in gone_hosts:
            for proc in self.state.data["processes"]:
                if proc["what"] == f"{self.ovs[host].dir}/":
                    _stop_process(proc["pid"], proc["what"])
            self._forget_namespace(host)
            shutil.rmtree(self.ovs[host].dir, ignore_errors=True)   # its OVS database too
        self.topo = new
        self.ovs = {h: HostOvs(self.run_dir, h) for h in new.hosts}
        for host in new_hosts:
            self._host(host)
        for host in new.hosts:
            if host not in new_hosts:
                ovsdb_mod.prepare_host(new, host, self.ovs[host].db,
                                       self.ovs[host].controller(self.controller_target),
                                       datapath_type="netdev")
        for ep in new_eps:
            self._endpoint(ep)
        self._resolve_underlay()
        self.state.data["topology"] = new.source
        self.state.save()

    def _forget_namespace(self, name: str):
        """Remove a node: its shell (which keeps the namespace, and with it
        the veth to its host, alive) by its recorded PID, then the name."""
        for proc in self.state.data["processes"]:
            if proc["what"] == "mininet:" and f"mininet:{name} " in _cmdline(proc["pid"]):
                _stop_process(proc["pid"], f"mininet:{name} ", proc.get("signal", "SIGHUP"))
        if self.net is not None:
            node = self.net.nameToNode.pop(name, None)
            if node in self.net.hosts:
                self.net.hosts.remove(node)
        run(["ip", "netns", "delete", name], check=False)
        if name in self.state.data["namespaces"]:
            self.state.data["namespaces"].remove(name)
            self.state.save()

    def _link(self, ns1: str, if1: str, ns2: str, if2: str):
        """A veth pair between two namespaces: through mininet when this
        process created both nodes (so its CLI knows the interfaces), else
        directly (a kept emulation changed by ``--apply``)."""
        nodes = self.net.nameToNode
        if ns1 in nodes and ns2 in nodes:
            self.net.addLink(nodes[ns1], nodes[ns2], intfName1=if1, intfName2=if2)
        else:
            netns_exec(ns1, ["ip", "link", "add", if1, "type", "veth", "peer", "name", if2,
                             "netns", ns2])

    def _endpoint(self, ep):
        self._node(ep.name)
        self._link(ep.host, ep.port, ep.name, "eth0")
        mtu = str(self.topo.endpoint_mtu(UNDERLAY_MTU))
        netns_exec(ep.host, ["ip", "link", "set", ep.port, "up", "mtu", mtu])
        self._quiet(ep.host, ep.port)
        # mininet brought eth0 up with a random MAC; down, the kernel forgets
        # the link-local address it derived from it.  An IPv6 endpoint gets
        # the model's own (EUI-64 of its MAC, or the one declared), as a
        # guest booted with that MAC has: port security admits no other.
        netns_exec(ep.name, ["ip", "link", "set", "eth0", "down"])
        netns_exec(ep.name, ["ip", "link", "set", "eth0", "address", ep.mac, "mtu", mtu])
        v6 = any(a.ip.version == 6 for a in ep.attachments)
        if v6:
            netns_exec(ep.name, ["ip", "link", "set", "eth0", "addrgenmode", "none"])
        netns_exec(ep.name, ["ip", "link", "set", "eth0", "up"])
        if v6:
            netns_exec(ep.name, ["ip", "-6", "addr", "add", f"{ep.ipv6_link_local}/64",
                                 "dev", "eth0"])
        # TCP over the userspace datapath: the sender must compute checksums.
        netns_exec(ep.name, ["ethtool", "-K", "eth0", "tx", "off"], check=False)
        if ep.trunk:
            # A trunk guest would configure 802.1Q sub-interfaces; this kernel
            # has no 8021q module, so its tagged frames are sent and read raw
            # (mininet_scenarios.probe) and eth0 carries no address.
            return self._attach(ep)
        a = ep.attachments[0]
        family = "-6" if a.ip.version == 6 else "-4"
        netns_exec(ep.name, ["ip", family, "addr", "add", str(a.ip), "dev", "eth0"]
                   + (["nodad"] if a.ip.version == 6 else []))
        self._attach(ep)

    def _attach(self, ep):
        """Add the endpoint's veth to br-int as a hypervisor adds a guest's
        tap: the Interface's ``external_ids`` say which endpoint it is."""
        self.ovs[ep.host].vsctl(
            "--timeout=10", "--", "--may-exist", "add-port", "br-int", ep.port,
            "--", "set", "Port", ep.port, f"external_ids:nsgre-endpoint={ep.name}",
            "--", "set", "Interface", ep.port, f"external_ids:iface-id={ep.iface_id}",
            f"external_ids:attached-mac={ep.mac}", "external_ids:iface-status=active")

    def interfaces(self, host: str) -> dict:
        """Interface name -> (external_ids, ofport) on one host's OVS."""
        from mininet_scenarios.guests import interfaces_json
        return interfaces_json(self.ovs[host].vsctl(
            "--format=json", "--columns=name,external_ids,ofport", "list", "Interface"))

    def cycle(self, name: str) -> str:
        """Power-cycle guest ``name``; what changed and how long it took."""
        if self.guests == "namespace":
            raise EmulationError("--cycle power-cycles a real guest; this emulation runs its "
                                 "vm endpoints as namespaces (start it with --guests qemu|libvirt)")
        if name not in self.topo.endpoints:
            raise EmulationError(f"no endpoint {name} in {self.topo.source}")
        return self.vms.cycle(name)

    def _static_config(self):
        """The source post, by hand: access tags, a GRE trunk, NORMAL."""
        a, b = self.topo.hosts.values()
        for host, peer in ((a, b), (b, a)):
            ovs = self.ovs[host.name]
            for ep in self.topo.endpoints_on(host.name):
                if ep.trunk:
                    raise EmulationError(f"--static: endpoint {ep.name} is a trunk; the "
                                         "source post's setup has access ports only")
                vlan = self.topo.network(ep.network).key
                if vlan > 4094:
                    raise EmulationError(f"--static: network {ep.network} key {vlan} "
                                         "is no VLAN id (1..4094): that cap is the point")
                ovs.vsctl("set", "port", ep.port, f"tag={vlan}")
            vlans = sorted({n.key for n in self.topo.networks.values()})
            ovs.vsctl("add-port", "br-int", "gre0", "--", "set", "interface", "gre0",
                      "type=gre", f"options:remote_ip={peer.underlay_ip}")
            ovs.vsctl("set", "port", "gre0", "trunks=" + ",".join(map(str, vlans)))

    # readiness -----------------------------------------------------------
    def wait_programmed(self, timeout: float = 30.0):
        """Wait until every bridge holds the flows and groups the pipeline
        wants (counted in nsgre's cookie space); with real guests, until the
        controller has marked every endpoint's interface ``nsgre-installed``
        and every guest has its address by DHCP (``wait_ready``)."""
        if self.static:
            return
        if self.guests != "namespace":
            return self.wait_ready(max(timeout, GUEST_READY_SECONDS))
        deadline = time.monotonic() + timeout
        pending = set(self.topo.hosts)
        while pending:
            for host in sorted(pending):
                ports = {name: 1 for name in self._port_names(host)}
                want = pipeline.compute(self.topo, host, ports)
                flows = self.ovs[host].ofctl("dump-flows", "cookie=0x4e53000000000000/0xffff000000000000",
                                             check=False)
                groups = self.ovs[host].ofctl("dump-groups", check=False)
                nflows = sum(1 for line in flows.splitlines() if "cookie=" in line)
                ngroups = sum(1 for line in groups.splitlines() if "group_id=" in line)
                if nflows == len(want.flows) and ngroups == len(want.groups):
                    pending.discard(host)
            if pending and time.monotonic() > deadline:
                raise EmulationError("not programmed after %ds: %s (controller log: %s/osken.log)"
                                     % (timeout, ", ".join(sorted(pending)), self.run_dir))
            time.sleep(0.2)

    def wait_ready(self, timeout: float = 120.0):
        """Wait until the controller has written ``nsgre-installed=true`` on
        every endpoint's interface (found by its ``iface-id``: a guest's
        tap has a hypervisor's name) and every guest's console has said
        ``nsgre-guest: dhcp`` with the topology's address."""
        deadline = time.monotonic() + timeout
        while True:
            missing = []
            for host in self.topo.hosts:
                by_id = {ext.get("iface-id"): (name, ext)
                         for name, (ext, _) in self.interfaces(host).items()}
                for ep in self.topo.endpoints_on(host):
                    name, ext = by_id.get(ep.iface_id, (None, {}))
                    if name is None:
                        missing.append(f"{ep.name}: no interface with iface-id {ep.iface_id} "
                                       f"on {host}")
                    elif ext.get("nsgre-installed") != "true":
                        missing.append(f"{ep.name}: {host} interface {name} not nsgre-installed")
            dhcp = self.vms.pending_dhcp() if self.guests != "namespace" else {}
            missing += [f"{n}: {why}" for n, why in sorted(dhcp.items())]
            if not missing:
                return
            if time.monotonic() > deadline:
                consoles = "".join(f"\n--- {n} console:\n{self.vms.guest(n).console_tail()}"
                                   for n in sorted(dhcp))
                raise EmulationError(f"not ready after {timeout:.0f} s (controller log: "
                                     f"{self.run_dir}/osken.log):\n  " + "\n  ".join(missing)
                                     + consoles)
            time.sleep(0.2)

    def _port_names(self, host):
        with ovsdb_mod.Ovsdb(self.ovs[host].db) as db:
            return db.port_names("br-int")

