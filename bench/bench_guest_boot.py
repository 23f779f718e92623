"""What DHCP costs a real guest's boot: boot to first ping reply with DHCP
against the same guest with a static address.

    sudo .venv/bin/python bench/bench_guest_boot.py [--runs 12] [--no-write]
                                                    [--image-dir DIR]

An emulation of its own (``NSGRE_RUN_DIR``, default /run/nsgre-gboot; hosts
bb1 and bb2, endpoints bbvm and bbns): ``bbvm`` is a real QEMU guest
(``--guests qemu``: TCG, 1 vCPU, the project's guest image) on bb1,
``bbns`` a namespace of the same network on bb2, across the GRE tunnel.
The guest is booted ``--runs`` times in each of two modes, alternating run
by run (DHCP, static, DHCP, static, ...):

- **DHCP**: the image's normal boot (the kernel command line
  ``guest_image.CMDLINE``): ``/init`` brings eth0 up, busybox ``udhcpc``
  asks, the controller answers from the model, udhcpc's script sets the
  address and MTU;
- **static**: the same image and guest, with
  ``nsgre.static=ADDRESS/PREFIX,MTU`` added to the kernel command line
  (``guest_image.static_cmdline``, used by this benchmark only): ``/init``
  sets the address and MTU the lease would give and runs no DHCP client.

Each run: the guest is powered off, its tap replaced by a new one (as the
emulation's power cycle does) and the clock waits until the controller has
marked the new tap ``nsgre-installed``, so the port's binding is not in the
figure.  Then bbns starts pinging the guest every 50 ms (``ping -D``: host
clock; the neighbour entry is answered by bb2's flows, so the pings flow at
once) and QEMU is launched; the figure is from QEMU's launch (the ``Popen``)
to the first echo reply bbns receives.  Every timestamp is taken on the
host, none in the guest (a guest's clock drifts under TCG).  To split the
time up: the guest's console lines are timestamped as they appear in its
console file (polled every 10 ms), the DHCP exchange and the guest's first
frames are captured on its tap in bb1 (``tcpdump``, host timestamps), and
the controller's ``DHCP... answered`` log lines are counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NSGRE_RUN_DIR", "/run/nsgre-gboot")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import topology                                              # noqa: E402
from mininet_scenarios import emulation, guest_image, guests  # noqa: E402
from report import write_section                             # noqa: E402

TOPOLOGY = """\
tunnel: gre
hosts:
  bb1: {underlay_ip: 198.18.0.91}
  bb2: {underlay_ip: 198.18.0.92}
networks:
  bbnet: {key: 4191}
endpoints:
  bbvm: {host: bb1, kind: vm,        network: bbnet, ip: 10.91.1.2/24}
  bbns: {host: bb2, kind: namespace, network: bbnet, ip: 10.91.1.1/24}
"""
GUEST, PEER = "bbvm", "bbns"
PING_INTERVAL = 0.05
BOOT_TIMEOUT = 120.0
SETTLE = 1.0            # seconds between the tap being installed and the launch
MODES = ("DHCP", "static")

DHCP_KINDS = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 5: "ACK", 6: "NAK"}
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) nsgre: (\S+) (\S+): "
                      r"DHCP(\w+) from .* answered")


class BootGuests(guests.Guests):
    """The emulation's guests, with the image taken from ``image_dir``."""
    image_dir = guest_image.DEFAULT_DIR

    def prepare(self, image_dir=None):
        super().prepare(self.image_dir)


# -- what is watched during one boot -------------------------------------------------
class Console(threading.Thread):
    """Host time at which each ``nsgre-guest:`` line first appears in the
    guest's console file (polled every 10 ms)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                text = self.path.read_text(errors="replace")
            except OSError:
                text = ""
            now = time.time()
            for m in guests.CONSOLE_LINE.finditer(text):
                word = m.group(1).split()[0] if m.group(1).split() else ""
                self.seen.setdefault(word, now)
            self.stop.wait(0.01)


class Capture:
    """tcpdump on the guest's tap in its host's namespace, to a pcap file."""

    FILTER = "arp or icmp or udp port 67 or udp port 68"

    def __init__(self, host: str, iface: str, path: Path):
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", host, "tcpdump", "-n", "-U", "--immediate-mode",
             "-s", "600", "-i", iface, "-w", str(path), self.FILTER],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()           # "listening on ..." once it captures
        if "listening" not in line:
            self.close()
            raise emulation.EmulationError(f"tcpdump on {host} {iface}: {line.strip()}")

    def close(self) -> list[tuple[float, bytes]]:
        if self.proc.poll() is None:
            self.proc.terminate()                    # the PID is tcpdump's (ip netns exec execs)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return read_pcap(self.path)


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if len(data) < 24:
        return []
    magic = struct.unpack_from("<I", data)[0]
    endian, nano = {0xa1b2c3d4: ("<", False), 0xd4c3b2a1: (">", False),
                    0xa1b23c4d: ("<", True), 0x4d3cb2a1: (">", True)}[magic]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        out.append((sec + frac / (1e9 if nano else 1e6), data[off:off + incl]))
        off += incl
    return out


def classify(frame: bytes, guest_mac: bytes) -> str | None:
    """What a frame on the guest's tap is, for the timeline: ``DHCP DISCOVER``
    (and OFFER, REQUEST, ACK), ``ARP from guest``, ``echo reply from guest``,
    ``echo request to guest``, ``frame from guest``."""
    if len(frame) < 14:
        return None
    from_guest = frame[6:12] == guest_mac
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0806:
        return "ARP from guest" if from_guest else None
    if ethertype != 0x0800 or len(frame) < 34:
        return "frame from guest" if from_guest else None
    ihl = (frame[14] & 0x0f) * 4
    proto = frame[23]
    l4 = 14 + ihl
    if proto == 1 and len(frame) >= l4 + 8:
        if frame[l4] == 0 and from_guest:
            return f"echo reply from guest {struct.unpack_from('!H', frame, l4 + 6)[0]}"
        if frame[l4] == 8 and not from_guest:
            return "echo request to guest"
    if proto == 17 and len(frame) >= l4 + 8:
        sport, dport = struct.unpack_from("!HH", frame, l4)
        if {sport, dport} <= {67, 68}:
            bootp = frame[l4 + 8:]
            i = 240                                  # options after the magic cookie
            while i + 1 < len(bootp) and bootp[i] != 255:
                if bootp[i] == 0:
                    i += 1
                    continue
                if bootp[i] == 53 and i + 2 < len(bootp):
                    return "DHCP " + DHCP_KINDS.get(bootp[i + 2], str(bootp[i + 2]))
                i += 2 + bootp[i + 1]
    return "frame from guest" if from_guest else None


PING_REPLY = re.compile(r"^\[(\d+\.\d+)\] .*bytes from .*icmp_seq=(\d+) .*time=([\d.]+) ms")


def first_reply(proc: subprocess.Popen) -> tuple[float, int, float]:
    """The first echo reply the pinger prints: its host time (``ping -D``),
    its sequence number and its round-trip time in seconds."""
    for line in proc.stdout:
        m = PING_REPLY.match(line)
        if m:
            return float(m.group(1)), int(m.group(2)), float(m.group(3)) / 1000
    raise emulation.EmulationError("the pinger never got a reply")


def fast_neighbours(ns: str):
    """Neighbour retries every 10 ms, as bench_live_change does: the first
    pings never wait out Linux's 1 s ARP retry."""
    for key, value in (("retrans_time_ms", "10"), ("mcast_solicit", "1000"),
                       ("ucast_solicit", "1000")):
        emulation.netns_exec(ns, ["sysctl", "-qw", f"net.ipv4.neigh.eth0.{key}={value}"])


def wait_installed(emu, host: str, tap: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while emu.interfaces(host).get(tap, ({}, None))[0].get("nsgre-installed") != "true":
        if time.monotonic() > deadline:
            raise emulation.EmulationError(f"{tap} on {host} not nsgre-installed after "
                                           f"{timeout:.0f} s")
        time.sleep(0.05)


def controller_dhcp(emu, offset: int) -> list[tuple[float, str]]:
    """(host time, DISCOVER/REQUEST) of the controller's answers to the guest
    logged after byte ``offset``."""
    text = (emu.run_dir / "osken.log").read_bytes()[offset:].decode(errors="replace")
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m and m.group(3) == GUEST:
            when = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((when, m.group(4)))
    return out


# -- one boot -------------------------------------------------------------------------
def boot(emu, img, mode: str, topo, workdir: Path, n: int) -> dict:
    vms = emu.vms
    g = vms.guest(GUEST)
    ep = topo.endpoint(GUEST)
    mtu = topo.network_mtu(ep.network)
    cmdline = img.cmdline if mode == "DHCP" else guest_image.static_cmdline(ep.ip, mtu)
    # Power off; a new tap, as the emulation's power cycle (and libvirt) does.
    vms.stop(g)
    vms._unplug_tap(g)
    vms._plug_tap(g, g.record["boot"] + 1)
    wait_installed(emu, ep.host, g.tap)
    time.sleep(SETTLE)
    load = os.getloadavg()[0]
    capture = Capture(ep.host, g.tap, workdir / f"boot{n}-{mode}.pcap")
    log_offset = (emu.run_dir / "osken.log").stat().st_size
    pinger = subprocess.Popen(["ip", "netns", "exec", PEER, "ping", "-D", "-n",
                               "-i", str(PING_INTERVAL), "-w", str(int(BOOT_TIMEOUT)),
                               str(ep.ip.ip)], stdout=subprocess.PIPE, text=True)
    console = None
    try:
        time.sleep(0.2)                       # the pinger is pinging
        wall0, mono0 = time.time(), time.monotonic()
        started = vms._start(g, dataclasses.replace(img, cmdline=cmdline))
        launch = wall0 + (started - mono0)    # the host clock at QEMU's Popen
        emu.state.save()
        console = Console(g.console_path)
        console.start()
        reply, seq, rtt = first_reply(pinger)
        reply -= launch
        time.sleep(0.3)                       # the console's last lines, the capture's
    finally:
        pinger.kill()
        pinger.wait()
        frames = capture.close()
        if console is not None:
            console.stop.set()
            console.join()
    mac = bytes.fromhex(ep.mac.replace(":", ""))
    events: dict[str, list[float]] = {}
    replies_out = []                          # (time, icmp_seq) of the guest's echo replies
    for ts, frame in frames:
        kind = classify(frame, mac)
        if kind and kind.startswith("echo reply from guest "):
            replies_out.append((ts - launch, int(kind.split()[-1])))
            kind = "echo reply from guest"
        if kind:
            events.setdefault(kind, []).append(ts - launch)
    first = {k: v[0] for k, v in events.items()}
    answered = controller_dhcp(emu, log_offset)
    cons = {word: t - launch for word, t in console.seen.items()}
    configured = cons.get("dhcp" if mode == "DHCP" else "static")
    if configured is None:
        raise emulation.EmulationError(f"run {n} ({mode}): the guest never said how it was "
                                       f"configured; its console ends:\n{g.console_tail()}")
    return {"mode": mode, "reply": reply, "seq": seq, "rtt": rtt, "replies_out": replies_out,
            "load": load, "console": cons, "first": first,
            "counts": {k: len(v) for k, v in events.items()},
            "answered": [(t - launch, kind) for t, kind in answered]}


# -- what the guest's DHCP scripts cost ----------------------------------------------
def script_costs(emu, topo, reps: int = 7) -> dict[str, float]:
    """Median host time of commands run in the (booted, idle) guest through
    its command channel, less that of ``true``: what one process and
    udhcpc's two script runs cost on its TCG vCPU.  ``deconfig`` then
    ``bound`` with the lease's values, as at boot (the address is removed
    and put back)."""
    g = emu.vms.guest(GUEST)
    g.wait_ready(60)
    ep = topo.endpoint(GUEST)
    env = (f"interface=eth0 ip={ep.ip.ip} subnet={ep.ip.netmask} "
           f"mask={ep.ip.network.prefixlen} mtu={topo.network_mtu(ep.network)}")
    commands = {
        "baseline": "true",
        "deconfig": f"{env} /etc/nsgre/dhcp deconfig",
        "bound": f"{env} /etc/nsgre/dhcp bound",
        "two processes (static)": f"ip link set dev eth0 mtu {topo.network_mtu(ep.network)}; "
                                  f"ip addr replace {ep.ip} dev eth0",
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(reps):
        for name, cmd in commands.items():
            t = time.monotonic()
            status, out = g.run(cmd, timeout=30)
            times[name].append(time.monotonic() - t)
            if status != 0:
                raise emulation.EmulationError(f"in the guest, {cmd!r} exited {status}: {out}")
    base = statistics.median(times.pop("baseline"))
    return {k: statistics.median(v) - base for k, v in times.items()}


# -- the report -----------------------------------------------------------------------
def med(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def phases(runs: list[dict]) -> list[tuple[str, float, float]]:
    """(phase, median seconds with DHCP, median seconds static), each from
    the host's timestamps of the run's events (launch = 0)."""
    def get(r, what):
        if what == "launch":
            return 0.0
        if what == "reply":
            return r["reply"]
        if what.startswith("console "):
            return r["console"].get(what.split()[1])
        return r["first"].get(what)

    def span(mode, a, b):
        values = []
        for r in runs:
            if r["mode"] != mode:
                continue
            x, y = get(r, a), get(r, b)
            values.append(None if x is None or y is None else y - x)
        return med(values)

    nan = float("nan")
    out_ = "echo reply from guest"
    rows = [
        ("QEMU launch to `nsgre-guest: up` (kernel, virtio modules, eth0 up: the same "
         "in both)", "launch", "console up", "launch", "console up"),
        ("`up` to the first echo reply leaving the guest (on its tap)",
         "console up", out_, "console up", out_),
        ("- `up` to DHCPDISCOVER (init starts `udhcpc` with the other respawned services; "
         "its `deconfig` script)", "console up", "DHCP DISCOVER", None, None),
        ("- DISCOVER to OFFER (OVS packet-in, the controller answers, packet-out)",
         "DHCP DISCOVER", "DHCP OFFER", None, None),
        ("- OFFER to REQUEST (`udhcpc`)", "DHCP OFFER", "DHCP REQUEST", None, None),
        ("- REQUEST to ACK (the controller again)", "DHCP REQUEST", "DHCP ACK", None, None),
        ("- ACK (static: `up`) to the first echo reply leaving the guest (the `bound` script "
         "up to `ip addr add`; static: `/init`'s `ip link` and `ip addr`; then the next ping, "
         "50 ms apart, and the guest's ARP for bbns)", "DHCP ACK", out_, "console up", out_),
        ("echo reply on the tap to its arrival at bbns (across the tunnel)",
         out_, "reply", out_, "reply"),
        ("**`up` to the first reply at bbns**", "console up", "reply", "console up", "reply"),
        ("QEMU launch to the first reply at bbns", "launch", "reply", "launch", "reply"),
        ("(console) `up` to the line saying the address (`dhcp ...`: the end of the "
         "`bound` script; `static ...`)", "console up", "console dhcp",
         "console up", "console static"),
    ]
    return [(label, span("DHCP", a, b) if a else nan, span("static", c, d) if c else nan)
            for label, a, b, c, d in rows]


def fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f} s"


def ms(x: float) -> str:
    return "n/a" if x != x else f"{x * 1000:.0f} ms"


def report(runs, args, topo, img, costs) -> tuple[str, list]:
    by = {m: [r["reply"] for r in runs if r["mode"] == m] for m in MODES}
    pairs = list(zip(by["DHCP"], by["static"]))
    diffs = [d - s for d, s in pairs]
    md, ms_ = statistics.median(by["DHCP"]), statistics.median(by["static"])
    ratio = md / ms_
    loads = [r["load"] for r in runs]
    discovers = [r["counts"].get("DHCP DISCOVER", 0) for r in runs if r["mode"] == "DHCP"]
    requests = [r["counts"].get("DHCP REQUEST", 0) for r in runs if r["mode"] == "DHCP"]
    answered = [len(r["answered"]) for r in runs if r["mode"] == "DHCP"]
    stray = sum(r["counts"].get("DHCP DISCOVER", 0) + r["counts"].get("DHCP REQUEST", 0)
                for r in runs if r["mode"] == "static")
    split = phases(runs)
    after_up = [(d["reply"] - d["console"]["up"]) - (st["reply"] - st["console"]["up"])
                for d, st in zip([r for r in runs if r["mode"] == "DHCP"],
                                 [r for r in runs if r["mode"] == "static"])]
    ep = topo.endpoint(GUEST)
    ctl_rt = [b - a for r in runs if r["mode"] == "DHCP"
              for a, b in [(r["first"].get("DHCP DISCOVER"), r["first"].get("DHCP OFFER")),
                           (r["first"].get("DHCP REQUEST"), r["first"].get("DHCP ACK"))]
              if a is not None and b is not None]
    exchange = med([r["first"].get("DHCP ACK") - r["first"].get("DHCP DISCOVER")
                    for r in runs if r["mode"] == "DHCP"
                    and r["first"].get("DHCP ACK") is not None
                    and r["first"].get("DHCP DISCOVER") is not None])
    lines = [
        "## Guest boot to first reply: DHCP against a static address",
        "",
        f"`bench/bench_guest_boot.py` (root): a real QEMU guest (`--guests qemu`: TCG, 1 vCPU, "
        f"{guests.MEMORY_MB} MB, the project's guest image, kernel {img.kernel_version}) on "
        "emulated host bb1, pinged every 50 ms by a namespace of its network on bb2, "
        "across the GRE tunnel. "
        f"{args.runs} boots in each mode, alternating run by run (DHCP, static, DHCP, ...): "
        "*DHCP* is the image's normal boot (busybox `udhcpc`, answered by the controller "
        "from the model); *static* is the same image and guest with "
        f"`{guest_image.STATIC_PARAM}={ep.ip},{topo.network_mtu(ep.network)}` on its kernel "
        "command line (`guest_image.static_cmdline`, this benchmark's only), so `/init` sets "
        "that address and MTU itself and no DHCP client runs. Each boot gets a new tap (as a "
        "power cycle does) and starts once the controller has marked it `nsgre-installed`. "
        "Time is from QEMU's launch (the `Popen`) to the first echo reply received by bbns "
        "(`ping -D`), all on the host clock, none in the guest (a guest's clock drifts under "
        "TCG). The split below comes from the guest's console lines, timestamped on the "
        "host as they appear in its console file (polled every 10 ms), and the DHCP "
        "messages captured on the guest's tap in bb1 (`tcpdump`, host timestamps).",
        "",
        f"Machine load (1-minute average at each launch, 2 cores): {min(loads):.1f} to "
        f"{max(loads):.1f}, median {statistics.median(loads):.1f}; the machine was shared "
        "with other work, and TCG boots are CPU-bound, so absolute times are this machine's "
        "at that load: the paired difference is the figure.",
        "",
        "| mode | min | median | max | runs (s, in order) |",
        "|---|---:|---:|---:|---|",
    ]
    for m in MODES:
        v = by[m]
        lines.append(f"| {m} | {fmt(min(v))} | {fmt(statistics.median(v))} | {fmt(max(v))} | "
                     + ", ".join(f"{x:.2f}" for x in v) + " |")
    lines += [
        "",
        f"DHCP cost, paired (each DHCP boot minus the static boot after it): median "
        f"**{ms(statistics.median(diffs))}** (min {ms(min(diffs))}, max {ms(max(diffs))}); "
        f"ratio of the medians DHCP / static **{ratio:.3f}x**.",
        "",
        "Both modes run the same until eth0 is up (`nsgre-guest: up` on the console); "
        "that part is the kernel's boot under TCG and carries nearly all of the run-to-run "
        "noise on a loaded machine. From `up` to the first reply, paired: DHCP boot minus "
        f"static boot median **{ms(statistics.median(after_up))}** (min "
        f"{ms(min(after_up))}, max {ms(max(after_up))}): the DHCP cost without the "
        "kernel's noise.",
        "",
        "Where the time goes (medians over the runs, host timestamps; the rows starting "
        "with a dash split the one above them):",
        "",
        "| phase | DHCP | static |",
        "|---|---:|---:|",
    ]
    for label, d, st in split:
        lines.append(f"| {label} | {ms(d) if d == d else '-'} | {ms(st) if st == st else '-'} |")
    lines += [
        "",
        f"DHCP messages on the tap per DHCP boot: DISCOVER {min(discovers)}-{max(discovers)}, "
        f"REQUEST {min(requests)}-{max(requests)}; controller `DHCP... answered` log lines "
        f"per boot {min(answered)}-{max(answered)}; DHCP messages from the static boots: "
        f"{stray}. The controller's two round trips (packet-in to packet-out on the tap) "
        f"took {ms(min(ctl_rt))} to {ms(max(ctl_rt))}, median {ms(med(ctl_rt))}; the whole "
        f"exchange, DISCOVER to ACK, {ms(exchange)} (median).",
    ]
    lines += [
        "",
        "The same scripts on the booted guest, idle, run through its command channel "
        "(host-timed, median of 7, less an empty command): `udhcpc`'s script with "
        f"`deconfig` {ms(costs['deconfig'])}, with `bound` (this lease's values) "
        f"{ms(costs['bound'])}; the static boot's two `ip` commands "
        f"{ms(costs['two processes (static)'])}. At boot they take longer: they compete with "
        "the services init starts at the same moment (the table).",
    ]
    lines += notes(runs, costs, discovers, ctl_rt)
    rows = [("Real guest (QEMU TCG) boot to first ping reply across the tunnel, "
             "DHCP vs static address",
             "-",
             f"median {md:.2f} s vs {ms_:.2f} s ({ratio:.2f}x); DHCP costs "
             f"{ms(statistics.median(diffs))} (paired median; from eth0 up to the reply "
             f"{ms(statistics.median(after_up))}; {args.runs} runs each, "
             f"load {statistics.median(loads):.1f})",
             None, "bench/bench_guest_boot.py")]
    return "\n".join(lines), rows


def notes(runs: list[dict], costs: dict, discovers: list[int], ctl_rt: list[float]) -> list[str]:
    """What the DHCP cost is made of, and what of it could go (from this run's figures)."""
    retries = max(discovers) > 1
    split = {label: (d, st) for label, d, st in phases(runs)}
    tail = next(v for k, v in split.items() if k.startswith("- ACK (static: `up`)"))
    controller = med([sum(b - a for a, b in
                          [(r["first"]["DHCP DISCOVER"], r["first"]["DHCP OFFER"]),
                           (r["first"]["DHCP REQUEST"], r["first"]["DHCP ACK"])])
                      for r in runs if r["mode"] == "DHCP" and all(
                          k in r["first"] for k in ("DHCP DISCOVER", "DHCP OFFER",
                                                    "DHCP REQUEST", "DHCP ACK"))])
    return [
        "",
        "What the DHCP cost is made of. Up to `nsgre-guest: up` both boots run the same. "
        "After it the static boot's `/init` runs two `ip` commands and the guest answers. "
        "The DHCP boot's `/init` ends instead; busybox init then starts its respawned "
        "services at once (the command channel's shell, `udhcpc`, two `nc`); `udhcpc` runs "
        "its script with `deconfig` (address flush, `rm`, link up) and sends DISCOVER; the "
        "controller answers DISCOVER and REQUEST from the model (OVS packet-in, the answer, "
        "packet-out); on the ACK `udhcpc` runs its script with `bound`, which forks "
        "`ipcalc`, `ip link` (the MTU), `cat` and `ip addr flush` before `ip addr add`, the "
        "step the first reply waits for. busybox `udhcpc` (1.35) has no initial random "
        "delay (RFC 2131 suggests waiting 1 to 10 s; its first DISCOVER goes out right "
        "after `deconfig`), sends no ARP probe for the offered address (no `-a`), and "
        + ("here its first DISCOVER was answered every time, so its 1 s retry (`-T 1`) "
           "never ran. " if not retries else
           "in some boots its first DISCOVER went unanswered and it waited its 1 s retry "
           "(`-T 1`; see the counts above). ")
        + "So nearly all of the DHCP cost is process start-up and script work on the "
        "guest's TCG vCPU; the controller's share, its two answers, is "
        f"{ms(controller)} (median, packet-in to packet-out on the tap).",
        "",
        "Avoidable, on the guest's side (the image, not the controller): `bound` runs "
        "three processes before `ip addr add` that a first lease does not need: "
        "`ipcalc -p` (busybox `udhcpc` already exports the prefix length as `$mask`), "
        "`cat /run/nsgre-addr` (the shell's `read` does it without a process) and "
        "`ip -4 addr flush` (`deconfig` flushed the address a moment before), and sets the "
        "MTU before the address. Cut to the static boot's two commands it would cost what "
        f"they cost: from the ACK to the first echo reply leaving the guest took {ms(tail[0])} "
        f"against {ms(tail[1])} from `up` in the static boot (the table), so about "
        f"{ms(max(tail[0] - tail[1], 0))} of the DHCP cost could go; `deconfig`'s "
        "`ip link set up` repeats `/init`'s. On the controller's side nothing is to be "
        "gained: it answers each message within a few milliseconds"
        + (", and the first DISCOVER every time." if not retries else
           "; the unanswered first DISCOVERs above are worth a look in its log.")
        + " Rerun: `sudo .venv/bin/python bench/bench_guest_boot.py` (from the repository "
        "root; `--runs N` boots per mode, default 12).",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12, help="boots in each mode (default 12)")
    ap.add_argument("--image-dir", type=Path, default=guest_image.DEFAULT_DIR,
                    help=f"the guest image (built there if needed; default "
                         f"{guest_image.DEFAULT_DIR})")
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    for tool in ("tcpdump", guests.QEMU):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (make setup installs it)")
    BootGuests.image_dir = args.image_dir

    tmp = tempfile.TemporaryDirectory(prefix="nsgre-gboot-")
    workdir = Path(tmp.name)
    topo_file = workdir / "guest-boot.yaml"      # the controller starts from a file
    topo_file.write_text(TOPOLOGY)
    topo = topology.load(str(topo_file))
    emu = emulation.Emulation(topo, emulation.RUN_DIR, guests="qemu")
    emu._vms = BootGuests(emu)
    runs = []
    try:
        emu.up(None)                 # boots the guest once, by DHCP
        emu.wait_programmed()        # ... and waits for its lease
        fast_neighbours(PEER)
        img = emu.vms.image()
        costs = None
        n = 0
        for i in range(args.runs):
            for mode in MODES:
                n += 1
                r = boot(emu, img, mode, topo, workdir, n)
                runs.append(r)
                cons = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["console"].items(),
                                                                     key=lambda kv: kv[1]))
                dhcp = ", ".join(f"{k[5:]} {v:.2f}" for k, v in sorted(r["first"].items(),
                                                                      key=lambda kv: kv[1])
                                 if k.startswith("DHCP "))
                out = r["first"].get("echo reply from guest")
                print(f"run {i + 1} {mode:6s}: first reply {r['reply']:.2f} s after launch "
                      f"(load {r['load']:.1f}; console: {cons}"
                      + (f"; tap: {dhcp}" if dhcp else "")
                      + (f"; echo replies on tap {r['replies_out'][:3]}" if out is not None
                         else "") + f"; bbns got seq {r['seq']} rtt {r['rtt'] * 1000:.0f} ms)",
                      flush=True)
        costs = script_costs(emu, topo)
        print("in the booted guest: " + ", ".join(f"{k} {v * 1000:.0f} ms"
                                                  for k, v in costs.items()), flush=True)
    finally:
        emu.down()
        tmp.cleanup()
    text, rows = report(runs, args, topo, img, costs)
    print(text)
    if not args.no_write:
        write_section(args.out, "guest-boot", text, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
