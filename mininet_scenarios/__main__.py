"""python -m mininet_scenarios [TOPO] [--check] [--static] [--cli] [--keep]
                          [--controller TARGET] [--guests namespace|qemu|libvirt]
                          | --down | --apply FILE | --cycle ENDPOINT

Bring up an emulated fabric for a topology (default: the embedded seed
topology, the source post's two hosts), optionally test every pair of
endpoints, and tear it all down again unless --keep.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import topology
from mininet_scenarios import emulation
from mininet_scenarios.check import check, interfaces


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m mininet_scenarios", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("topology", nargs="?", help="topology YAML file (default: embedded seed)")
    p.add_argument("--check", action="store_true",
                   help="test every ordered endpoint pair; exit 0 only if all pass")
    p.add_argument("--static", action="store_true",
                   help="the source post's manual way instead: access tags, GRE trunk, "
                        "NORMAL, no controller (the baseline)")
    p.add_argument("--controller", metavar="TARGET",
                   help="use a running controller (e.g. unix:/run/nsgre/osken.sock, "
                        "tcp:198.18.255.1:6653) instead of starting one")
    p.add_argument("--ha", type=int, default=0, metavar="N",
                   help="N controllers following a 3-member raft cluster of the topology "
                        "database, one master (the lock's holder), the others standing by; "
                        "every host's bridge connected to all")
    p.add_argument("--shards", type=int, default=0, metavar="M",
                   help="with --ha: share the hosts out between M shards, each controller "
                        "master of its own (every N-th) and the others' backup")
    p.add_argument("--tls", action="store_true",
                   help="OpenFlow over TLS: the emulation makes its own CA, a certificate per "
                        "host and per controller; controllers listen on the underlay and "
                        "let each switch be only the host its certificate names (with --ha "
                        "the database serves them through its TLS gates)")
    p.add_argument("--cli", action="store_true", help="open the mininet CLI")
    p.add_argument("--keep", action="store_true", help="leave everything running")
    p.add_argument("--down", action="store_true", help="remove a kept emulation and exit")
    p.add_argument("--guests", choices=("namespace", "qemu", "libvirt"), default="namespace",
                   help="run each kind: vm endpoint as a namespace (default), or as a real "
                        "QEMU guest on its host: on a tap the emulation plugs into br-int "
                        "(qemu), or as a domain of a private libvirtd per host (libvirt)")
    p.add_argument("--cycle", metavar="ENDPOINT",
                   help="power-cycle a guest of a kept emulation (--guests qemu|libvirt "
                        "--keep) and time its first ping reply across the tunnel")
    p.add_argument("--apply", metavar="FILE",
                   help="change a kept emulation to FILE: add and remove namespaces, ports "
                        "and hosts, refresh tunnels; also apply FILE to the controller the "
                        "emulation started")
    return p.parse_args(argv)


def apply(path: str) -> int:
    """--apply: validated first, so a bad file changes nothing at all."""
    from nsgre_tools import client as api
    try:
        emu = emulation.Emulation.kept()
        new = topology.load(path, previous=emu.topo)
        emu.apply(new)
    except (topology.TopologyError, emulation.EmulationError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: emulation now {new.summary()}")
    sock = emu.run_dir / "api.sock"
    if str(sock) in emu.state.data.get("files", []):
        status, body = api.request(str(sock), "POST", "/apply", new_text(path),
                                   {"X-Nsgre-Source": path})
        if status != 200:
            print("\n".join(body.get("problems", [body.get("error", str(status))])),
                  file=sys.stderr)
            return 1
        changes = ", ".join(f"{h} {n}" for h, n in sorted(body["changes"].items()))
        print(f"controller: applied; changes sent: {changes or 'none'}")
    return 0


def new_text(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.down:
        print("removed" if emulation.teardown() else "nothing to remove")
        return 0
    if args.apply:
        return apply(args.apply)
    if args.cycle:
        try:
            print(emulation.Emulation.kept().cycle(args.cycle), flush=True)
        except emulation.EmulationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        topo = topology.load(args.topology)
    except topology.TopologyError as exc:
        print(exc, file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.ha and (args.static or args.controller):
        print("--ha runs its own controllers: not with --static or --controller",
              file=sys.stderr)
        return 2
    if args.shards and not args.ha:
        print("--shards M needs --ha N (the controllers that share them)", file=sys.stderr)
        return 2
    if args.tls and (args.static or args.controller):
        print("--tls runs its own controllers: not with --static or --controller",
              file=sys.stderr)
        return 2
    emu = emulation.Emulation(topo, static=args.static, guests=args.guests, ha=args.ha,
                              shards=args.shards, tls=args.tls)
    status, completed = 0, False
    try:
        mode = "static baseline (tags, GRE trunk, NORMAL)" if args.static else "nsgre controller"
        if args.guests != "namespace":
            mode += f"; vm endpoints as {args.guests} guests"
        if args.tls:
            mode += "; OpenFlow over TLS, a certificate per host" + (
                ", the database's clients through its gates" if args.ha else "")
        if args.ha:
            mode = (f"{args.ha} nsgre controllers on a 3-member raft cluster, "
                    + (f"{args.shards} shards" if args.shards else "one master")
                    + mode[len("nsgre controller"):])
        print(f"{topo.source}: {topo.summary()}; {mode}", flush=True)
        started = time.monotonic()
        emu.up(args.controller)
        if emu.controller_target:
            print(f"controller: {emu.controller_target}", flush=True)
        emu.wait_programmed()
        for name, guest in emu.guest_handles().items():
            lease = guest.lease()
            print(f"{name}: {args.guests} guest on {guest.ep.host}, interface {guest.tap}; "
                  f"DHCP gave {lease['address']} mtu {lease['mtu']}", flush=True)
        if emu.guest_handles():
            print(f"guests ready {time.monotonic() - started:.1f} s after start", flush=True)
        if args.check:
            result = check(topo, emu.guest_handles())
            print(result.table([i.label for i in interfaces(topo)]))
            print(result.line(), flush=True)
            status = 0 if result.passed else 1
        if args.cli:
            from mininet.cli import CLI
            CLI(emu.net)
        completed = True
    except emulation.EmulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        if args.keep and completed:
            print(f"kept running; state in {emu.run_dir}; remove with: "
                  "python -m mininet_scenarios --down")
        else:
            emu.down()
    return status


if __name__ == "__main__":
    sys.exit(main())
