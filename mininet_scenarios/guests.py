"""Real guests for the ``kind: vm`` endpoints: ``--guests qemu|libvirt``.

Each guest is a QEMU process (TCG software emulation, never KVM: this
machine's /dev/kvm is a paravirtual hypervisor a stock kernel dies on)
booting the project's guest image (``mininet_scenarios.guest_image``) in its
emulated host's network namespace, so its tap is where that host's
``ovs-vswitchd`` runs.  Attached the way a hypervisor attaches it:

- ``qemu``: the emulation creates a tap (``g-vm1-1``, a new name every
  boot), adds it to ``br-int`` with the Interface ``external_ids`` libvirt
  would write (``iface-id`` = the endpoint's ``iface_id``, ``attached-mac``,
  ``vm-id`` = the guest's UUID, ``iface-status=active``), and starts QEMU
  on it;
- ``libvirt``: a private ``libvirtd`` per emulated host (its own mount
  namespace with private /etc/libvirt, /run/libvirt, /var/lib/libvirt,
  /var/log/libvirt, passwd and group, and ``OVS_RUNDIR`` pointing at that
  host's OVS) and a domain with ``<virtualport type='openvswitch'>``:
  libvirt itself creates ``vnet0`` (``vnet1`` after a power cycle) and
  writes those ``external_ids``.  libvirt takes only a UUID as interfaceid,
  so every guest endpoint needs a UUID ``iface_id`` in that mode.

The guest learns its address, prefix, router and MTU only by DHCP (the
controller answers it) and reports it on its console; the emulation drives
it through a command channel on its second serial port (``Guest.run``).
Every process is recorded in the emulation's state with the signal that
stops it, so ``--down`` and a failed start remove exactly what was made.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from mininet_scenarios import emulation, guest_image
from mininet_scenarios.emulation import EmulationError, netns_exec, run

MODES = ("namespace", "qemu", "libvirt")
MEMORY_MB = 128          # 64 fails silently; 96 is the least that boots
QEMU = "qemu-system-x86_64"
#: libvirt's QEMU capability probe takes ~8 s; its result is shared by every
#: private libvirtd and kept between runs.
LIBVIRT_CACHE = Path("/var/cache/nsgre/libvirt")
#: What each private libvirtd sees instead of the machine's own directories.
LIBVIRT_MOUNTS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
                  "log": "/var/log/libvirt"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_COMMAND = 48 * 1024
CONSOLE_LINE = re.compile(r"nsgre-guest: (.*)")
STALE_END = re.compile(rb"\n@@nsgre-end [0-9a-f]+ \d+@@\n")
DHCP_LINE = re.compile(r"^(dhcp|renew) (\S+) mtu (\d+)(?: router (\S+))?$")


class GuestError(EmulationError):
    pass


# -- names and identities ------------------------------------------------------
def vm_uuid(run_dir: Path, ep) -> str:
    """The guest's UUID (``vm-id``, libvirt's domain UUID), the same on
    every boot.  Its QEMU's command line carries it (``-uuid``), which is
    how a recorded PID is recognised before it is stopped."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nsgre-guest:{run_dir}/{ep.host}/{ep.name}"))


def qemu_mark(record: dict) -> str:
    """What the command line of the guest's QEMU contains, whoever started it."""
    return f"-uuid {record['uuid']}"


def tap_name(name: str, boot: int) -> str:
    """The tap of the ``boot``-th boot of guest ``name`` in qemu mode: a new
    name every boot, as a hypervisor gives (at most 15 bytes)."""
    tap = f"g-{name}-{boot}"
    if len(tap) <= 15:
        return tap
    import hashlib
    return f"g-{hashlib.sha256(name.encode()).hexdigest()[:8]}-{boot}"[:15]


def problems(topo, mode: str) -> list[str]:
    """Why this topology's vm endpoints cannot run as ``mode`` guests."""
    out = []
    if mode == "namespace":
        return out
    for ep in topo.endpoints.values():
        if ep.kind != "vm":
            continue
        if ep.trunk:
            out.append(f"endpoint {ep.name}: a trunk (vlans:) cannot be a {mode} guest: the "
                       "guest image configures one untagged interface (use --guests namespace)")
        elif ep.ip.version != 4:
            out.append(f"endpoint {ep.name}: {ep.ip} is IPv6; the guest image configures "
                       "itself by DHCPv4 only (use --guests namespace)")
        elif not topo.network(ep.network).dhcp:
            out.append(f"endpoint {ep.name}: network {ep.network} has dhcp: false, and a "
                       "guest learns its address only by DHCP")
        if mode == "libvirt" and not UUID_RE.match(ep.iface_id):
            out.append(f"endpoint {ep.name}: libvirt needs a UUID as the interfaceid it writes "
                       f"as iface-id, and this endpoint's iface_id is {ep.iface_id!r}: declare "
                       "iface_id: <UUID> (lower case, with dashes) for it")
    return out


# -- one guest -----------------------------------------------------------------
class Guest:
    """A guest's files and the two ways to talk to it: its console (the
    first serial port, a file) and its command channel (the second, a Unix
    socket)."""

    def __init__(self, run_dir: Path, ep, mode: str, record: dict):
        self.ep = ep
        self.name = ep.name
        self.mode = mode
        self.record = record            # its part of the emulation's state
        self.dir = run_dir / "hosts" / ep.host / "guests" / ep.name
        self.console_path = self.dir / "console.log"
        self.ctl_path = self.dir / "ctl.sock"

    @property
    def tap(self) -> str | None:
        return self.record.get("tap")

    # console ------------------------------------------------------------
    def console(self) -> list[str]:
        """The machine-readable lines the guest printed this boot
        (``nsgre-guest: ...``, without the prefix)."""
        try:
            text = self.console_path.read_text(errors="replace")
        except OSError:
            return []
        return [m.group(1).strip() for m in map(CONSOLE_LINE.search, text.splitlines()) if m]

    def console_tail(self, n: int = 6) -> str:
        try:
            lines = self.console_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no console output)"
        return "\n".join(line.rstrip("\r") for line in lines[-n:]) or "(no console output)"

    def lease(self) -> dict | None:
        """The last address DHCP gave it this boot: ``{"address":
        IPv4Interface, "mtu": int, "router": str|None}``."""
        for line in reversed(self.console()):
            m = DHCP_LINE.match(line)
            if m:
                return {"address": ipaddress.ip_interface(m.group(2)), "mtu": int(m.group(3)),
                        "router": m.group(4)}
        return None

    def ready(self) -> bool:
        return "ready" in self.console()

    # command channel ------------------------------------------------------
    def run(self, command: str, timeout: float = 30.0, check: bool = False) -> tuple[int, str]:
        """Run a shell command in the guest; (exit status, output)."""
        nonce = secrets.token_hex(8)
        line = f"{nonce} {base64.b64encode(command.encode()).decode()}\n".encode()
        if len(line) > MAX_COMMAND:
            raise GuestError(f"{self.name}: command of {len(line)} bytes is too long for the "
                             "guest's serial command channel")
        end = re.compile(rb"\n@@nsgre-end " + nonce.encode() + rb" (\d+)@@\n")
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.ctl_path))
                sock.sendall(line)
                while True:
                    m = end.search(buf)
                    if m:
                        # Whatever a caller that gave up left behind ends with its own marker.
                        head = buf[:m.start()]
                        stale = list(STALE_END.finditer(head))
                        out = head[stale[-1].end():] if stale else head
                        out = out.decode(errors="replace")
                        status = int(m.group(1))
                        break
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    data = sock.recv(65536)
                    if not data:
                        raise GuestError(f"{self.name}: its command channel closed")
                    buf += data
        except TimeoutError:
            raise GuestError(f"{self.name}: no answer from the guest within {timeout:.0f} s "
                             f"to {command[:60]!r}; its console ends:\n{self.console_tail()}")
        except OSError as exc:
            raise GuestError(f"{self.name}: cannot reach its command channel "
                             f"{self.ctl_path}: {exc}")
        if check and status != 0:
            raise GuestError(f"{self.name}: {command[:80]!r} exited {status}: {out[-500:]}")
        return status, out

    def wait_ready(self, timeout: float = 60.0):
        """Wait until its command channel is open (``nsgre-guest: ready``)."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: not ready after {timeout:.0f} s; its console "
                                 f"ends:\n{self.console_tail()}")
            time.sleep(0.1)

    def ping(self, ip: str, count: int = 2, timeout: float = 2.0) -> bool:
        status, _ = self.run(f"ping -c {count} -i 0.2 -W {timeout:g} -q {ip}",
                             timeout=count * 0.2 + timeout + 10)
        return status == 0


# -- the private libvirtd of one emulated host ---------------------------------
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

LIBVIRTD_CONF = """\
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


class LibvirtHost:
    def __init__(self, emu, host: str):
        self.host = host
        self.ovs_dir = emu.ovs[host].dir
        self.dir = self.ovs_dir / "libvirt"
        self.sock = self.dir / "run" / "libvirt-sock"
        self.pidfile = self.dir / "run" / "libvirtd.pid"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.sock}"

    def virsh(self, *args, check=True) -> subprocess.CompletedProcess:
        return run(["virsh", "-q", "-c", self.uri, *args], check=check, timeout=60)

    def launch(self) -> subprocess.Popen:
        """Start this host's libvirtd (it daemonizes); ``started`` waits."""
        for sub in (*LIBVIRT_MOUNTS, "cache"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for target in (*LIBVIRT_MOUNTS.values(), "/var/cache/libvirt"):
            Path(target).mkdir(parents=True, exist_ok=True)   # mount points only
        LIBVIRT_CACHE.mkdir(parents=True, exist_ok=True)
        (self.dir / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (self.dir / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        # The QEMU driver wants a libvirt-qemu user even when it runs QEMU as root.
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        if not re.search(r"^libvirt-qemu:", passwd, re.M):
            passwd += "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
        for name, gid in (("libvirt-qemu", 64055), ("libvirt", 64056), ("kvm", 64057)):
            if not re.search(rf"^{name}:", group, re.M):
                group += f"{name}:x:{gid}:\n"
        (self.dir / "passwd").write_text(passwd)
        (self.dir / "group").write_text(group)
        d = self.dir
        script = " && ".join(
            [f"mount --bind {d / sub} {target}" for sub, target in LIBVIRT_MOUNTS.items()]
            + [f"mount --bind {LIBVIRT_CACHE} /var/cache/libvirt",
               f"mount --bind {d / 'passwd'} /etc/passwd",
               f"mount --bind {d / 'group'} /etc/group",
               f"exec libvirtd --daemon --config {d / 'etc' / 'libvirtd.conf'} "
               f"--pid-file {self.pidfile}"])
        env = {**os.environ, "OVS_RUNDIR": str(self.ovs_dir)}   # its ovs-vsctl reaches this host's OVS
        return subprocess.Popen(["ip", "netns", "exec", self.host, "unshare", "-m",
                                 "--propagation", "private", "sh", "-c", script],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)

    def started(self, proc: subprocess.Popen, state, timeout: float = 60.0):
        out, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise GuestError(f"{self.host}: libvirtd did not start: {out.strip()}")
        deadline = time.monotonic() + timeout
        while not (self.sock.exists() and self.pidfile.exists()
                   and self.pidfile.read_text().strip()):
            if time.monotonic() > deadline:
                raise GuestError(f"{self.host}: libvirtd did not listen on {self.sock}; see "
                                 f"{self.dir / 'log' / 'libvirtd.log'}")
            time.sleep(0.05)
        state.add_process(int(self.pidfile.read_text()), f"{self.dir}/")
        # The capability probe (first start only) is done when it answers.
        self.virsh("version")

    def qemu_pid(self, name: str) -> int:
        return int((self.dir / "run" / "qemu" / f"{name}.pid").read_text())


def domain_xml(guest: Guest, img: guest_image.Image) -> str:
    ep = guest.ep
    return f"""<domain type='qemu'>
  <name>{escape(ep.name)}</name>
  <uuid>{guest.record['uuid']}</uuid>
  <memory unit='MiB'>{MEMORY_MB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(img.kernel))}</kernel>
    <initrd>{escape(str(img.initrd))}</initrd>
    <cmdline>{escape(img.cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/{QEMU}</emulator>
    <serial type='file'><source path={quoteattr(str(guest.console_path))}/><target port='0'/></serial>
    <serial type='unix'><source mode='bind' path={quoteattr(str(guest.ctl_path))}/><target port='1'/></serial>
    <interface type='bridge'>
      <source bridge='br-int'/>
      <virtualport type='openvswitch'><parameters interfaceid={quoteattr(ep.iface_id)}/></virtualport>
      <mac address={quoteattr(ep.mac)}/>
      <model type='virtio'/>
      <driver name='qemu'><host csum='off'/><guest csum='off'/></driver>
      <rom enabled='no'/>
    </interface>
    <memballoon model='none'/>
  </devices>
</domain>
"""


# -- all guests of an emulation --------------------------------------------------
class Guests:
    """The guests of one emulation: plugging, booting (all at once),
    readiness, power cycles.  Its records live in the emulation's state
    (``state.data["guests"]``), so a later process (``--cycle``,
    ``--check`` of a kept emulation) finds them."""

    def __init__(self, emu):
        self.emu = emu
        self.mode = emu.guests
        data = emu.state.data.setdefault("guests", {})
        data.setdefault("mode", self.mode)
        data.setdefault("endpoints", {})
        data.setdefault("libvirtd", [])
        self.data = data

    @property
    def topo(self):
        return self.emu.topo

    def endpoints(self) -> list:
        if self.mode == "namespace":
            return []
        return [ep for ep in self.topo.endpoints.values() if ep.kind == "vm"]

    def guest(self, name: str) -> Guest:
        ep = self.topo.endpoint(name)
        record = self.data["endpoints"].get(name)
        if ep.kind != "vm" or record is None:
            raise GuestError(f"{name} is not a guest of this emulation (guests: "
                             f"{', '.join(sorted(self.data['endpoints'])) or 'none'})")
        return Guest(self.emu.run_dir, ep, self.mode, record)

    def all(self) -> dict[str, Guest]:
        return {n: self.guest(n) for n in sorted(self.data["endpoints"])}

    def image(self) -> guest_image.Image:
        img = guest_image.image(Path(self.data["image"]))
        if img is None:
            raise GuestError(f"the guest image in {self.data['image']} is gone or outdated")
        return img

    # before anything is created -------------------------------------------
    def prepare(self, image_dir: Path = guest_image.DEFAULT_DIR):
        if self.emu.static and self.mode != "namespace":
            raise GuestError("--static is the source post's baseline with namespaces; "
                             "it takes no --guests")
        found = problems(self.topo, self.mode)
        if found:
            raise GuestError("\n".join(found))
        if not self.endpoints():
            return
        missing = [tool for tool in [QEMU] + (["libvirtd", "virsh"] if self.mode == "libvirt"
                                             else []) if shutil.which(tool) is None]
        if missing:
            raise GuestError(f"{', '.join(missing)} not found: install qemu-system-x86 (and "
                             "libvirt-daemon libvirt-clients libvirt-daemon-driver-qemu), "
                             "as make setup does")
        try:
            img = guest_image.build(image_dir)
        except guest_image.ImageError as exc:
            raise GuestError(f"guest image: {exc}")
        self.data["image"] = str(img.dir)
        self.emu.state.save()

    # while endpoints are created ---------------------------------------------
    def plug(self, ep):
        """Make the guest's place on its host; qemu: its tap on br-int."""
        record = {"host": ep.host, "uuid": vm_uuid(self.emu.run_dir, ep), "boot": 0,
                  "tap": None, "pid": None}
        self.data["endpoints"][ep.name] = record
        self.emu.state.save()
        guest = Guest(self.emu.run_dir, ep, self.mode, record)
        guest.dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "qemu":
            self._plug_tap(guest, 1)

    def _plug_tap(self, guest: Guest, boot: int):
        ep = guest.ep
        tap = tap_name(ep.name, boot)
        guest.record.update(boot=boot, tap=tap)
        self.emu.state.save()
        netns_exec(ep.host, ["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
        # The host side of the tap has the guest's MAC with fe as first byte, as libvirt's.
        mtu = max(emulation.UNDERLAY_MTU, self.topo.network_mtu(ep.network))
        netns_exec(ep.host, ["ip", "link", "set", tap, "address", "fe" + ep.mac[2:],
                             "mtu", str(mtu), "up"])
        self.emu._quiet(ep.host, tap)
        # What libvirt runs for <virtualport type='openvswitch'>.
        self.emu.ovs[ep.host].vsctl(
            "--timeout=10", "--", "--may-exist", "add-port", "br-int", tap,
            "--", "set", "Interface", tap, f"external_ids:attached-mac={ep.mac}",
            f"external_ids:iface-id={ep.iface_id}", f"external_ids:vm-id={guest.record['uuid']}",
            "external_ids:iface-status=active")

    def _unplug_tap(self, guest: Guest):
        ep, tap = guest.ep, guest.tap
        self.emu.ovs[ep.host].vsctl("--timeout=10", "--", "--if-exists", "del-port", "br-int", tap)
        netns_exec(ep.host, ["ip", "link", "del", tap], check=False)

    # booting ---------------------------------------------------------------
    def boot_all(self):
        """Start every guest at once (they boot in parallel: CPU-bound)."""
        guests = [self.guest(ep.name) for ep in self.endpoints()]
        if not guests:
            return
        img = self.image()
        if self.mode == "libvirt":
            self._start_libvirtds(sorted({g.ep.host for g in guests}))
            for g in guests:
                g.dir.mkdir(parents=True, exist_ok=True)
                (g.dir / "domain.xml").write_text(domain_xml(g, img))
                LibvirtHost(self.emu, g.ep.host).virsh("define", str(g.dir / "domain.xml"))
            # "virsh start" takes ~0.4 s each: all at once, recorded here after.
            errors = {}

            def start(g):
                try:
                    self._virsh_start(g)
                except EmulationError as exc:
                    errors[g.name] = str(exc)
            threads = [threading.Thread(target=start, args=(g,)) for g in guests]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for g in guests:
                if g.name not in errors:
                    self._started(g)
            if errors:
                raise GuestError("\n".join(errors[n] for n in sorted(errors)))
        else:
            for g in guests:
                self._start(g, img)

    def _start_libvirtds(self, hosts: list[str]):
        daemons = [LibvirtHost(self.emu, h) for h in hosts
                   if h not in self.data["libvirtd"]]
        launched, errors = [], []
        try:
            for lv in daemons:
                launched.append((lv, lv.launch()))
                self.data["libvirtd"].append(lv.host)
                self.emu.state.save()
        finally:
            for lv, proc in launched:        # each one recorded, whatever the others did
                try:
                    lv.started(proc, self.emu.state)
                except (EmulationError, subprocess.TimeoutExpired) as exc:
                    errors.append(str(exc))
        if errors:
            raise GuestError("\n".join(errors))

    def _start(self, guest: Guest, img) -> float:
        """Start the guest's QEMU; the monotonic time it was started."""
        guest.dir.mkdir(parents=True, exist_ok=True)
        if guest.console_path.exists():          # keep the last boot's console
            guest.console_path.replace(guest.dir / f"console-boot{guest.record['boot']}.log")
        if self.mode == "qemu":
            ep = guest.ep
            cmd = ["ip", "netns", "exec", ep.host, QEMU, "-name", f"guest={ep.name}",
                   "-uuid", guest.record["uuid"], "-accel", "tcg", "-machine", "pc",
                   "-m", str(MEMORY_MB), "-smp", "1", "-nodefaults", "-no-user-config",
                   "-display", "none", "-no-reboot",
                   "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", img.cmdline,
                   "-chardev", f"file,id=con,path={guest.console_path}", "-serial", "chardev:con",
                   "-chardev", f"socket,id=ctl,path={guest.ctl_path},server=on,wait=off",
                   "-serial", "chardev:ctl",
                   "-netdev", f"tap,id=n0,ifname={guest.tap},script=no,downscript=no",
                   "-device", f"virtio-net-pci,netdev=n0,mac={ep.mac},romfile=,"
                              "csum=off,guest_csum=off"]
            started = time.monotonic()
            with open(guest.dir / "qemu.log", "w") as log:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            guest.record["pid"] = proc.pid
            self.emu.state.add_process(proc.pid, qemu_mark(guest.record))
            time.sleep(0.05)
            if proc.poll() is not None:
                raise GuestError(f"{guest.name}: qemu exited at once: "
                                 + (guest.dir / "qemu.log").read_text()[-1500:])
            return started
        started = time.monotonic()
        self._virsh_start(guest)
        self._started(guest)
        return started

    def _virsh_start(self, guest: Guest):
        """libvirt adds the port (vnetN, with its external_ids) and starts QEMU."""
        LibvirtHost(self.emu, guest.ep.host).virsh("start", guest.name)

    def _started(self, guest: Guest):
        """Record a libvirt guest's QEMU (by libvirt's PID file) and its tap."""
        pid = LibvirtHost(self.emu, guest.ep.host).qemu_pid(guest.name)
        guest.record.update(pid=pid, boot=guest.record["boot"] + 1,
                            tap=self._interface_of(guest.ep))
        self.emu.state.add_process(pid, qemu_mark(guest.record))

    def _interface_of(self, ep) -> str | None:
        for name, (ext, _ofport) in self.emu.interfaces(ep.host).items():
            if ext.get("iface-id") == ep.iface_id:
                return name
        return None

    def stop(self, guest: Guest):
        """Power the guest off (qemu: its process ends; libvirt: ``virsh destroy``)."""
        if self.mode == "libvirt":
            LibvirtHost(self.emu, guest.ep.host).virsh("destroy", guest.name)
        pid = guest.record.get("pid")
        if pid:
            emulation._stop_process(pid, qemu_mark(guest.record))
            self.emu.state.forget_process(pid)
        guest.record["pid"] = None
        self.emu.state.save()

    # readiness -------------------------------------------------------------
    def pending_dhcp(self) -> dict[str, str]:
        """Guests without the lease the topology gives them: name -> why."""
        out = {}
        for name, g in self.all().items():
            lease = g.lease()
            if lease is None:
                out[name] = "no DHCP lease yet" + (" (dhcp failed so far)"
                                                   if "dhcp failed" in g.console() else "")
            elif lease["address"] != g.ep.ip:
                raise GuestError(f"{name} got {lease['address']} by DHCP; the topology says "
                                 f"{g.ep.ip}")
        return out

    # power cycle -----------------------------------------------------------
    def cycle(self, name: str, timeout: float = 120.0) -> str:
        """Power-cycle a guest; a line saying what changed and how long its
        first ping reply across the tunnel took from its start."""
        guest = self.guest(name)
        ep = guest.ep
        old_tap = guest.tap
        old_ofport = self.emu.interfaces(ep.host).get(old_tap, ({}, None))[1]
        self.stop(guest)
        img = self.image()
        peer, target, across = self._ping_plan(ep)
        if self.mode == "qemu":
            self._unplug_tap(guest)
        # The start: where libvirt's "virsh start" adds the port and starts QEMU.
        started = time.monotonic()
        if self.mode == "qemu":
            self._plug_tap(guest, guest.record["boot"] + 1)
        start_wall = time.time() - (time.monotonic() - started)
        self._start(guest, img)
        self.emu.state.save()
        leased = {}

        def watch():
            while time.monotonic() < started + timeout and "t" not in leased:
                if guest.lease() is not None:
                    leased["t"] = time.monotonic() - started
                time.sleep(0.05)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        first = self._first_reply(guest, peer, target, started, timeout)
        iface = self._interface_of(ep) if self.mode == "libvirt" else guest.tap
        if self.mode == "libvirt":
            guest.record["tap"] = iface
            self.emu.state.save()
        deadline = time.monotonic() + 15
        ext, ofport = self.emu.interfaces(ep.host).get(iface, ({}, None))
        while ext.get("nsgre-installed") != "true" and time.monotonic() < deadline:
            time.sleep(0.1)
            ext, ofport = self.emu.interfaces(ep.host).get(iface, ({}, None))
        watcher.join(max(0.0, deadline - time.monotonic()))
        extra = []
        if ext.get("nsgre-installed-ts"):
            extra.append(f"nsgre-installed {int(ext['nsgre-installed-ts']) / 1000 - start_wall:.1f} s")
        if "t" in leased:
            extra.append(f"DHCP {leased['t']:.1f} s")
        where = "across the tunnel" if across else "on its own host"
        pinger = f"ping from {peer.name}" if peer is not None else f"{name} pinging {target.name}"
        return (f"{name}: power-cycled ({self.mode}, tap {old_tap} -> {iface}, ofport "
                f"{old_ofport} -> {ofport}); first reply {where} {first:.1f} s after start"
                f" ({pinger}" + "".join(f", {e}" for e in extra) + ")")

    def _ping_plan(self, ep):
        """(peer, target, across): a namespace endpoint of the guest's
        network pings it (``peer``; one on another host first); when only
        guests share its network, the guest pings one of them (``target``)."""
        same = [e for e in self.topo.endpoints.values()
                if e.name != ep.name and not e.trunk and e.network == ep.network]
        def order(e):
            return (e.host == ep.host, e.name)
        namespaces = [e for e in same if e.kind != "vm"]
        if namespaces:
            peer = min(namespaces, key=order)
            return peer, None, peer.host != ep.host
        if not same:
            raise GuestError(f"{ep.name}: no other endpoint in {ep.network} to ping")
        target = min(same, key=order)
        return None, target, target.host != ep.host

    def _first_reply(self, guest: Guest, peer, target, started: float, timeout: float) -> float:
        ep = guest.ep
        if peer is not None:
            proc = subprocess.run(["ip", "netns", "exec", peer.name, "ping", "-n", "-q",
                                   "-c", "1", "-i", "0.1", "-W", "1", "-w", str(int(timeout)),
                                   str(ep.ip.ip)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise GuestError(f"{ep.name}: no ping reply from {peer.name} within "
                                 f"{timeout:.0f} s; its console ends:\n{guest.console_tail()}")
            return time.monotonic() - started
        deadline = started + timeout
        guest.wait_ready(timeout)
        while time.monotonic() < deadline:
            status, _ = guest.run(f"ping -c 1 -W 1 -q {target.ip.ip}", timeout=10)
            if status == 0:
                return time.monotonic() - started
        raise GuestError(f"{ep.name}: no ping reply from {target.name} within {timeout:.0f} s")


def teardown_hook(state_data: dict, run_dir: Path):
    """Before the recorded processes are stopped: QEMU processes a private
    libvirtd started that were not recorded yet (a run that died between
    ``virsh start`` and recording its PID) are found by libvirt's PID files."""
    records = state_data.get("guests", {}).get("endpoints", {})
    for host in state_data.get("guests", {}).get("libvirtd", []):
        for pidfile in (run_dir / "hosts" / host / "libvirt" / "run" / "qemu").glob("*.pid"):
            record = records.get(pidfile.stem)
            try:
                pid = int(pidfile.read_text())
            except (OSError, ValueError):
                continue
            if record is not None:
                emulation._stop_process(pid, qemu_mark(record))


def interfaces_json(out: str) -> dict:
    """``ovs-vsctl --format=json --columns=name,external_ids,ofport list
    Interface`` -> name -> (external_ids, ofport)."""
    data = json.loads(out)
    result = {}
    for name, ext, ofport in data["data"]:
        result[name] = (dict(ext[1]), ofport if isinstance(ofport, int) else None)
    return result
