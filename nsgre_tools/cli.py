"""nsgre: the command line.

    nsgre validate [FILE]              check a topology, print a summary
    nsgre pipeline HOST [-t FILE]      the flows and groups HOST should hold
    nsgre prepare-host HOST [-t FILE] --controller TARGET [--db DB]
                                       [--datapath-type netdev|system]
                                       create/refresh br-int and tunnels
    nsgre controller [-t FILE] [--listen ADDR] [--port N]
                                       run osken-manager with the nsgre app
    nsgre draw [FILE] -o OUT.svg|OUT.png
                                       picture of hosts, endpoints, networks, tunnels
    nsgre trace [-t FILE] SRC DST [--proto icmp|arp|dhcp|tcp:PORT|udp:PORT] [--vlan V] [--json]
                                       where a packet goes, table by table, offline

Exit status: 0 success, 1 a problem with the input or the target, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import topology
from nsgre_core import pipeline
from nsgre_tools import client as api

RUNTIME = Path(__file__).resolve().parent.parent / "osken_apps"
APP = RUNTIME / "nsgre_app.py"
FLAGS = RUNTIME / "flags.py"


def cmd_validate(args) -> int:
    topo = topology.load(args.file)
    print(f"{topo.source}: ok: {topo.summary()}")
    return 0


def cmd_pipeline(args) -> int:
    topo = topology.load(args.topology)
    _known_host(topo, args.host)
    # Offline there is no switch to tell port numbers: the ports are
    # numbered as ``nsgre trace`` numbers them, and the legend says how.
    print("\n".join(pipeline.offline_listing(topo, args.host)))
    return 0


def _known_host(topo, host: str) -> None:
    if host not in topo.hosts:
        raise SystemExit(f"nsgre: unknown host {host!r}{topology.did_you_mean(host, topo.hosts)}"
                         f"; hosts: {', '.join(topo.hosts)}")


def _credentials(path: str, kind: str, name: str | None = None):
    """A party's credentials (a directory ``nsgre pki`` wrote), refused
    unless they are whole and name a ``kind`` (``name``, if given)."""
    from nsgre_core.credentials import Credentials, CredentialsError
    try:
        cred = Credentials(path)
    except CredentialsError as exc:
        raise SystemExit(f"nsgre: --tls: {exc}")
    if cred.identity.kind != kind or name is not None and cred.identity.name != name:
        want = f"{kind} {name}" if name else f"a {kind}"
        raise SystemExit(f"nsgre: --tls {path}: its certificate names {cred.identity}, "
                         f"not {want}")
    return cred


def cmd_prepare_host(args) -> int:
    from osken_apps import ovsdb              # the host side: the only tool that needs OVSDB
    topo = topology.load(args.topology)
    _known_host(topo, args.host)
    cred = None
    if args.tls:
        cred = _credentials(args.tls, "host", args.host)
        if not all(t.startswith("ssl:") for t in args.controller.split(",")):
            raise SystemExit(f"nsgre: --tls: controller targets must be ssl:IP:PORT, "
                             f"not {args.controller}")
    if args.manager and not (args.manager.startswith("pssl:") and args.tls):
        raise SystemExit(f"nsgre: --manager {args.manager}: the host's OVSDB is served to "
                         "the controllers over TLS only: pssl:PORT:IP, with --tls DIR")
    try:
        ovsdb.prepare_host(topo, args.host, args.db, args.controller,
                           datapath_type=args.datapath_type, tls=cred, manager=args.manager)
    except ovsdb.OvsdbError as exc:
        print(f"nsgre: {exc}", file=sys.stderr)
        return 1
    peers = ", ".join(topo.tunnel_port(args.host, p.name) for p in topo.peers(args.host))
    print(f"{args.host}: br-int datapath {topo.host(args.host).dpid:016x} "
          f"({args.datapath_type}, fail_mode=secure) -> {args.controller}; tunnels: {peers or 'none'}"
          + (f"; OVSDB served at {args.manager}" if args.manager else ""))
    return 0


def cmd_pki(args) -> int:
    from nsgre_tools.pki import Pki, PkiError
    try:
        if args.pki_action == "init":
            print(f"CA created: {Pki(args.dir).init() / 'cert.pem'} (its key: keep "
                  f"{Path(args.dir) / 'ca' / 'key.pem'} off the fabric)")
            return 0
        pki = Pki(args.pki)
        if args.pki_action == "list":
            for e in pki.issued():
                state = f"revoked {e['revoked']}" if e["revoked"] else f"valid to {e['not_after']}"
                print(f"{e['kind']:<10} {e['name']:<20} serial {e['serial']:<34} {state}")
            return 0
        if args.pki_action == "revoke":
            serials = pki.revoke(args.kind, args.name)
            print(f"{args.kind} {args.name}: revoked {', '.join(serials)}; CRL "
                  f"{pki.ca_dir / 'crl.pem'} (copy it to every controller's crl.pem)")
            return 0
        kind = {"read": "reader", "write": "writer"}[args.role] \
            if args.pki_action == "client" else args.pki_action
        out = pki.issue(kind, args.name, days=args.days)
        print(f"{kind} {args.name}: {out}/key.pem, cert.pem, ca.pem, crl.pem "
              f"(valid {args.days} days)")
        return 0
    except PkiError as exc:
        raise SystemExit(f"nsgre: pki: {exc}")


def cmd_apply(args) -> int:
    if args.shards is not None and (args.db is None or args.shards < 1):
        raise SystemExit("nsgre: --shards N: N >= 1, with --db (shards are the database's)")
    if args.db is not None:
        return _apply_to_database(args)
    try:
        text = Path(args.file).read_text()
    except OSError as exc:
        raise SystemExit(f"nsgre: {args.file}: cannot read: {exc.strerror}")
    path = "/apply" if args.wait is None else f"/apply?wait={args.wait}"
    status, body = api.request(args.api, "POST", path, text.encode(),
                               {"X-Nsgre-Source": args.file},
                               timeout=30.0 if args.wait is None else args.wait + 30)
    if status == 200:
        changes = ", ".join(f"{h} {n}" for h, n in sorted(body["changes"].items())) or "none"
        print(f"{args.file}: applied: {body['topology']}; changes sent: {changes}")
        if "wait_seconds" in body:
            print(f"every host holds it: waited {body['wait_seconds'] * 1000:.0f} ms")
        return 0
    for problem in body.get("problems", [body.get("error", f"HTTP {status}")]):
        print(problem, file=sys.stderr)
    return 1


def _apply_to_database(args) -> int:
    from nsgre_tools import database
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise SystemExit(f"nsgre: {args.file}: cannot read: {exc.strerror}")
    try:
        done = database.apply(args.db, data, args.file, args.shards)
    except topology.TopologyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except database.DatabaseError as exc:
        raise SystemExit(f"nsgre: database {exc}")
    what = f"{done.operations} operations" if done.operations else "unchanged"
    retried = f" (after {done.retries} concurrent applies)" if done.retries else ""
    print(f"{args.file}: applied to the database: {done.topology.summary()}; "
          f"version {done.version}, {what}{retried}")
    return 0


def _gate_probe(args) -> tuple:
    return () if args.probe is None else (args.probe,)


def cmd_db(args) -> int:
    from nsgre_tools import database
    try:
        if args.action == "create":
            tls = _credentials(args.tls, "controller") if args.tls else None
            made = database.create(args.dir, args.cluster, args.address, args.port, args.remote,
                                   tls, *_gate_probe(args))
            what = ("a standalone database" if not args.cluster else
                    "a cluster of 1 member" if len(made) == 1 else
                    f"a cluster of {len(made)} members")
            print(f"{args.dir}: {what}, serving " + ",".join(f"unix:{m.sock}" for m in made))
        elif args.action == "join":
            tls = _credentials(args.tls, "controller") if args.tls else None
            member = database.join(args.dir, args.address, args.port, args.peer, args.remote,
                                   tls, *_gate_probe(args))
            print(f"{args.dir}: joined the cluster of {args.peer}, serving unix:{member.sock}")
        elif args.action == "stop":
            print(f"{args.dir}: stopped {', '.join(database.stop(args.dir)) or 'nothing'}")
        elif args.action == "upgrade":
            remotes = ",".join(f"unix:{m.sock}" for m in database.members(args.dir))
            print(f"{args.dir}: {database.upgrade(remotes)}")
        elif args.action == "listen":
            if not args.target:
                raise database.DatabaseError("listen: --target TARGET (e.g. ptcp:6641)")
            remotes = ",".join(f"unix:{m.sock}" for m in database.members(args.dir))
            database.listen(remotes, args.target, args.probe,
                            gated=any(m.gate_pidfile.exists()
                                      for m in database.members(args.dir)))
            probe = f", inactivity probe {args.probe} ms" if args.probe is not None else ""
            print(f"{args.dir}: every member serves {args.target}{probe}")
        else:
            print("\n".join(database.status(args.dir)))
    except database.DatabaseError as exc:
        raise SystemExit(f"nsgre: database {exc}")
    return 0


def cmd_object(args) -> int:
    """nsgre endpoint|network|host add|del NAME ...: one object of the topology
    in force, changed in the database."""
    import re
    from nsgre_tools import database
    from topology.edit import Change
    what = f"nsgre {args.command} {args.action} {args.name}"
    change = Change(args.command + "s", args.name,
                    None if args.action == "del" else _object_body(args))
    def refused(problems) -> int:
        for problem in problems:             # lines of a rendered file mean nothing here
            print(re.sub(r"^(nsgre [^:]*):\d+: ", r"\1: ", problem), file=sys.stderr)
        return 1
    if args.db is None:                      # the file-mode controller, through its API
        body = {} if args.action == "del" else _object_body(args)
        status, answer = api.request(args.api, "POST", "/objects", json.dumps(
            {"kind": args.command, "action": args.action, "name": args.name,
             "body": body}).encode(), {"Content-Type": "application/json"}, timeout=120.0)
        if status != 200:
            return refused(answer.get("problems", [answer.get("error", f"HTTP {status}")]))
        print(f"{what}: done: {answer['topology']}; kept in {answer['saved']}")
        return 0
    try:
        done = database.change(args.db, what, change)
    except topology.TopologyError as exc:
        return refused(exc.problems)
    except database.DatabaseError as exc:
        raise SystemExit(f"nsgre: database {exc}")
    print(f"{what}: done: {done.topology.summary()}; version {done.version}")
    return 0


def _object_body(args) -> dict:
    """The object as a topology file would hold it."""
    given = lambda **fields: {k: v for k, v in fields.items() if v is not None}  # noqa: E731
    if args.command == "host":
        return given(underlay_ip=args.underlay_ip, dpid=args.dpid)
    if args.command == "network":
        return given(key=args.key, router=args.router, dhcp=False if args.no_dhcp else None,
                     dns=args.dns or None, lease_time=args.lease_time, mtu=args.mtu)
    body = given(host=args.host, kind=args.kind)
    if args.vlan:
        vlans = {}
        for spec in args.vlan:
            vid, _, rest = spec.partition(":")
            net, _, ip = rest.partition(":")
            vlans[int(vid) if vid.isdigit() else vid] = {"network": net, "ip": ip}
        body["vlans"] = vlans
    else:
        body.update(given(network=args.network, ip=args.ip))
    return {**body, **given(mac=args.mac, port=args.port, link_local=args.link_local,
                            iface_id=args.iface_id)}


def cmd_show(args) -> int:
    status, f = api.request(args.api, "GET", "/fabric")
    if status != 200:
        raise api.ApiError(f"controller at {args.api}: HTTP {status}: {f.get('error', '')}")
    print(f"fabric {f['source']} (version {f['version']}, tunnel {f['tunnel']})")
    print("hosts:")
    for name, h in f["hosts"].items():
        state = "connected" if h["connected"] else "NOT CONNECTED"
        print(f"  {name}: {state}, datapath {h['datapath']}, underlay {h['underlay_ip']}")
        for port, tun in h["tunnels"].items():
            ofport = tun["ofport"] if tun["ofport"] is not None else "absent"
            print(f"    tunnel {port} -> {tun['peer']} (ofport {ofport})")
    print("networks:")
    for name, n in f["networks"].items():
        vlans = ", ".join(f"{h} vlan {v}" for h, v in n["local_vlans"].items()) or "no host"
        print(f"  {name}: key {n['key']}; {vlans}")
    print("endpoints:")
    for name, e in f["endpoints"].items():
        ofport = e["ofport"] if e["ofport"] is not None else "absent"
        where = "; ".join(f"{a['network']} {a['ip']}" + (f" (guest vlan {a['vlan']})"
                                                          if a["vlan"] else "")
                          for a in e["attachments"])
        port = e["port"] if e["interface"] in (None, e["port"]) else \
            f"{e['port']} = {e['interface']}"
        state = f"ofport {ofport}" + (", installed" if e["installed"] else "")
        print(f"  {name}: {e['kind']} on {e['host']}, port {port} ({state}), "
              f"{e['mac']}, {where}")
    return 0


def cmd_status(args) -> int:
    """The database's members and leader, which controller holds which
    shard, and each switch's master."""
    from nsgre_core import paths
    db_dir = args.db_dir or (str(paths.run_dir() / "db")
                             if (paths.run_dir() / "db").is_dir() else None)
    if db_dir:
        from nsgre_tools import database
        print(f"database {db_dir}:")
        try:
            for line in database.status(db_dir):
                print(f"  {line}")
        except database.DatabaseError as exc:
            print(f"  unreadable: {exc}")
    controllers = args.controllers or sorted((str(p) for p in paths.run_dir().glob("api*.sock")),
                                             key=lambda p: (len(p), p))
    masters: dict = {}
    print("controllers:")
    for address in controllers:
        try:
            st = _get(address, "/status")
        except api.ApiError as exc:
            print(f"  {address}: not answering ({exc})")
            continue
        held, backup = [], []
        for shard, entry in sorted(st["shards"].items(), key=lambda i: int(i[0])):
            hosts = ", ".join(entry["hosts"])
            if entry["generation"] is not None:
                held.append(f"shard {shard} (generation {entry['generation']}: {hosts})")
            else:
                backup.append(f"shard {shard} ({hosts})")
        if not st["several"]:
            what = "alone (no database: master of every switch)"
        else:
            what = ("master of " + ", ".join(held) if held else "master of nothing") + \
                ("; standing by for " + ", ".join(backup) if backup else "")
        print(f"  {address}: {what}")
        print(f"    holds {st['holds']}")
        for host, role in st["switches"].items():
            masters.setdefault(host, []).append((role, address))
    print("switches:")
    for host, roles in sorted(masters.items()):
        master = [a for r, a in roles if r == "master"]
        others = "; ".join(f"{r} {a}" for r, a in roles if r != "master")
        print(f"  {host}: master {', '.join(master) or 'NONE'}" + (f"; {others}" if others else ""))
    return 0


def _get(address: str, path: str) -> dict:
    status, body = api.request(address, "GET", path)
    if status != 200:
        raise api.ApiError(f"controller at {address}: HTTP {status}: {body.get('error', '')}")
    return body


def cmd_flows(args) -> int:
    import json
    hosts = _get(args.api, "/flows")
    if args.host and args.host not in hosts:
        raise SystemExit(f"nsgre: no connected host {args.host!r}"
                         f"{topology.did_you_mean(args.host, hosts)}")
    shown = {}
    for host, rows in hosts.items():
        if args.host and host != args.host:
            continue
        keep = [r for r in rows
                if (args.table is None or r["table"] == args.table)
                and (args.network is None or r["serves"] == f"network {args.network}")
                and (args.endpoint is None or r["serves"] == f"endpoint {args.endpoint}")]
        shown[host] = keep
    if args.json:
        print(json.dumps(shown, indent=1))
        return 0
    for host, rows in shown.items():
        print(f"{host}: {len(rows)} flows")
        for r in rows:
            print(f"  table {r['table']} prio {r['priority']:>3}  {r['serves']:<16} "
                  f"pkts {r['packets']:>6}  {r['flow']} -> {r['actions']}")
    return 0


def cmd_metrics(args) -> int:
    print(api.request_text(args.api, "/metrics"), end="")
    return 0


def cmd_diff(args) -> int:
    import json
    d = _get(args.api, "/diff")
    if args.json:
        print(json.dumps(d, indent=1))
        return 0 if d["in_sync"] else 1
    for host in d["not_connected"]:
        print(f"{host}: NOT CONNECTED")
    for host, entry in d["hosts"].items():
        count = sum(len(v) for v in entry.values())
        print(f"{host}: {'in sync' if not count else f'{count} differences'}")
        for kind in ("missing", "unexpected", "changed"):
            for row in entry[kind]:
                print(f"  {kind:<10} {row['serves']:<16} {row['flow']}")
    return 0 if d["in_sync"] else 1


def cmd_controller(args) -> int:
    if args.topology:
        topology.load(args.topology)           # refuse a bad file before starting
    if not args.tls and args.api and "/" not in args.api:
        raise SystemExit(f"nsgre: --api {args.api}: the API on TCP serves only TLS, with "
                         "client certificates: give the controller its credentials (--tls DIR)")
    if args.tls:
        _credentials(args.tls, "controller")   # refuse bad credentials before starting
        if args.listen.startswith("/"):
            raise SystemExit("nsgre: --tls: OpenFlow with TLS listens on an address "
                             "(--listen IP), not a Unix socket")
        plain = [r for r in (args.ovsdb, *args.db.split(",")) if r.startswith("tcp:")]
        if plain:
            raise SystemExit(f"nsgre: --tls: {plain[0]}: with TLS, OVSDB across hosts is "
                             "ssl: too (a host's: prepare-host --manager pssl:PORT:IP)")
    argv = ["osken-manager", "--user-flags", str(FLAGS), "--ofp-listen-host", args.listen,
            "--ofp-tcp-listen-port", str(args.port), "--nsgre-api", args.api,
            "--nsgre-ovsdb", args.ovsdb, "--nsgre-db", args.db, "--nsgre-prefer",
            args.prefer, "--nsgre-db-probe", str(args.db_probe), "--nsgre-tls", args.tls,
            str(APP)]
    if args.topology:
        argv += ["--nsgre-topology", str(Path(args.topology).resolve())]
    if args.listen.startswith("/") and os.path.exists(args.listen):
        os.unlink(args.listen)                 # a stale socket of an earlier run
    # eventlet's green DNS (dnspython) costs every controller 0.3 s of CPU
    # and 15 MB at start; nsgre resolves no names (remotes are addresses).
    os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
    from os_ken.cmd import manager
    sys.argv = argv
    manager.main(args=argv[1:], prog="osken-manager")
    return 0


def cmd_draw(args) -> int:
    from nsgre_tools import draw
    try:
        draw.output_format(args.output)        # refuse a bad suffix before any work
        draw.render(draw.to_dot(topology.load(args.file)), args.output)
    except draw.DrawError as exc:
        print(f"nsgre: {exc}", file=sys.stderr)
        return 1
    print(args.output)
    return 0


def _trace_live(args, src: str, dst: str) -> int:
    import json
    from urllib.parse import urlencode
    query = {"src": src, "dst": dst, "proto": args.proto}
    if args.vlan is not None:
        query["vlan"] = args.vlan
    status, body = api.request(args.api, "GET", "/trace?" + urlencode(query))
    if status != 200:
        print(f"nsgre trace: {body.get('error', status)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({k: v for k, v in body.items() if k != "text"}, indent=2))
        return 0
    print("(live: through the flows installed on the switches)")
    print(body["text"])
    if not body["agrees_with_model"]:
        print(f"  DIFFERS from the model, whose flows give: {body['model_verdict']}")
    return 0


def cmd_trace(args) -> int:
    import json
    from nsgre_tools import simulator, trace
    if len(args.where) not in (2, 3) or (len(args.where) == 3 and args.topology):
        print("nsgre trace: give [TOPO] SRC DST (or -t TOPO SRC DST)", file=sys.stderr)
        return 2
    *given, src, dst = args.where
    if args.live:
        return _trace_live(args, src, dst)
    topo = topology.load(given[0] if given else args.topology)
    try:
        result = trace.trace(topo, src, dst, args.proto, args.vlan)
    except trace.TraceError as exc:
        print(f"nsgre trace: {exc}", file=sys.stderr)
        return 1
    except simulator.SimulationError as exc:
        print(f"nsgre trace: the simulator cannot follow this packet: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsgre", description="nsgre: OpenFlow networks over "
                                "tunnel keys, programmed by an os-ken app",
                                epilog="exit status: 0 ok, 1 bad input or target, 2 usage")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate", help="check a topology file and print a summary")
    s.add_argument("file", nargs="?", help="topology YAML (default: embedded seed)")
    s.set_defaults(func=cmd_validate)

    def with_topology(s):
        s.add_argument("-t", "--topology", help="topology YAML (default: embedded seed)")

    def with_controller(s):
        s.add_argument("--controller", "--api", dest="api", default=api.DEFAULT, metavar="URL",
                       help="the running controller's API: unix:PATH, PATH or HOST:PORT "
                            "(default: %(default)s)")
        s.add_argument("--tls", dest="client_tls", default=os.environ.get("NSGRE_TLS", ""),
                       metavar="DIR", help="this client's credentials, for an API on TCP "
                       "(nsgre pki client NAME wrote DIR; default: $NSGRE_TLS)")

    s = sub.add_parser("status", help="several controllers: the database's members and "
                       "leader, which controller holds which shard, each switch's master")
    s.add_argument("--controller", "--api", dest="controllers", action="append", default=[],
                   metavar="URL", help="a controller's API (again for each; default: every "
                   "api*.sock in the run directory)")
    s.add_argument("--db-dir", help="the database's directory (default: db in the run "
                   "directory, if there)")
    s.add_argument("--tls", dest="client_tls", default=os.environ.get("NSGRE_TLS", ""),
                   metavar="DIR", help="this client's credentials, for APIs on TCP")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("pipeline", help="print the flows and groups a host should hold "
                       "(ovs-ofctl syntax, from the model alone)")
    s.add_argument("host")
    with_topology(s)
    s.set_defaults(func=cmd_pipeline)

    s = sub.add_parser("prepare-host", help="create or refresh a host's br-int and tunnel "
                       "ports over OVSDB")
    s.add_argument("host")
    with_topology(s)
    s.add_argument("--controller", required=True,
                   help="OpenFlow controller target, e.g. tcp:198.18.255.1:6653 or unix:PATH")
    s.add_argument("--db", default="unix:/var/run/openvswitch/db.sock",
                   help="OVSDB remote (default: %(default)s)")
    s.add_argument("--datapath-type", default="system", choices=["system", "netdev"],
                   help="system: kernel datapath; netdev: userspace (default: %(default)s)")
    s.add_argument("--tls", default="", metavar="DIR",
                   help="the host's credentials (nsgre pki host HOST wrote DIR): set as the "
                        "switch's key, certificate and CA, for ssl: controller targets")
    s.add_argument("--manager", default="", metavar="pssl:PORT:IP",
                   help="with --tls: serve the host's OVSDB to the controllers there "
                        "(ovs-vsctl set-manager), for their --ovsdb ssl:{underlay_ip}:PORT")
    s.set_defaults(func=cmd_prepare_host)

    s = sub.add_parser("pki", help="nsgre's certificate authority: a CA the operator owns, "
                       "certificates bound to hosts, controllers and clients, revocation")
    pki_sub = s.add_subparsers(dest="pki_action", required=True)
    q = pki_sub.add_parser("init", help="create the CA in DIR")
    q.add_argument("dir")
    q.set_defaults(func=cmd_pki)
    for kind, what in (("host", "a host's switch: it may be that host's switch only"),
                       ("controller", "a controller: OpenFlow listener, topology database"),
                       ("client", "an API or database client, reading or also writing")):
        q = pki_sub.add_parser(kind, help=f"issue the certificate of {what}")
        q.add_argument("name")
        if kind == "client":
            q.add_argument("--role", choices=["read", "write"], required=True)
        q.add_argument("--days", type=int, default=365)
        q.add_argument("--pki", default=os.environ.get("NSGRE_PKI", "pki"), metavar="DIR",
                       help="the CA's directory (default: $NSGRE_PKI or ./pki)")
        q.set_defaults(func=cmd_pki)
    q = pki_sub.add_parser("revoke", help="revoke a certificate (CRL signed again)")
    q.add_argument("kind", choices=["host", "controller", "reader", "writer"])
    q.add_argument("name")
    q.add_argument("--pki", default=os.environ.get("NSGRE_PKI", "pki"), metavar="DIR")
    q.set_defaults(func=cmd_pki)
    q = pki_sub.add_parser("list", help="every certificate issued, its expiry, revoked or not")
    q.add_argument("--pki", default=os.environ.get("NSGRE_PKI", "pki"), metavar="DIR")
    q.set_defaults(func=cmd_pki)

    s = sub.add_parser("controller", help="run osken-manager with the nsgre app")
    with_topology(s)
    s.add_argument("--listen", default="0.0.0.0",
                   help="address, or a filesystem path for a Unix socket (default: %(default)s)")
    s.add_argument("--port", type=int, default=6653, help="OpenFlow TCP port (default: %(default)s)")
    s.add_argument("--api", default=api.DEFAULT,
                   help="where the HTTP API listens: a Unix socket path or HOST:PORT "
                        "(default: %(default)s)")
    s.add_argument("--ovsdb", default="", metavar="TEMPLATE",
                   help="each host's OVSDB remote, with {host} and {underlay_ip}, e.g. "
                        "tcp:{underlay_ip}:6640: keep tunnel ports in step over OVSDB")
    s.add_argument("--db", default="", metavar="REMOTES",
                   help="follow nsgre's topology database instead of a file: every version "
                        "written there is applied as it lands")
    s.add_argument("--prefer", default="", metavar="SHARDS",
                   help="with --db: the shards to be master of at once, comma-separated "
                        "(default: all); the others only as a backup, after a grace delay")
    s.add_argument("--db-probe", type=float, default=1.0, metavar="SECONDS",
                   help="with --db: seconds of silence after which a database member is "
                        "probed, and given up after as long again (default: %(default)s; "
                        "set the members' own probe alike: nsgre db listen --probe)")
    s.add_argument("--tls", default="", metavar="DIR",
                   help="this controller's credentials (nsgre pki controller NAME wrote "
                        "DIR): serve OpenFlow with TLS only, each switch bound to the host "
                        "its certificate names")
    s.set_defaults(func=cmd_controller)

    s = sub.add_parser("show", help="the running fabric: hosts (connected, datapath, "
                       "tunnels), networks (key, local VLANs), endpoints (port, ofport, MAC, IP)")
    with_controller(s)
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("flows", help="installed flows, named by network and endpoint, "
                       "with packet counters (from the controller)")
    s.add_argument("--host"), s.add_argument("--network"), s.add_argument("--endpoint")
    s.add_argument("--table", type=int)
    s.add_argument("--json", action="store_true")
    with_controller(s)
    s.set_defaults(func=cmd_flows)

    s = sub.add_parser("diff", help="desired against installed flows and groups per host; "
                       "exit 0 in sync, 1 not")
    s.add_argument("--json", action="store_true")
    with_controller(s)
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("metrics", help="the controller's Prometheus metrics")
    with_controller(s)
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("apply", help="send a new topology to the running controller: "
                       "validated first, then only the difference is programmed")
    s.add_argument("file", help="topology YAML")
    s.add_argument("--wait", type=float, nargs="?", const=60.0, metavar="SECONDS",
                   help="return only once every host holds the change, and say how long "
                        "that took (as ovn-nbctl --wait=hv --print-wait-time); give up "
                        "after SECONDS (default 60)")
    s.add_argument("--db", metavar="REMOTES",
                   help="write it to nsgre's topology database instead (OVSDB remotes, "
                        "comma-separated: unix:PATH, tcp:IP:PORT), as the difference with "
                        "what it holds, in one guarded transaction")
    s.add_argument("--shards", type=int, metavar="N",
                   help="with --db: share the hosts out between N shards, one controller "
                        "master of each (default: as many as now; a host keeps its shard)")
    with_controller(s)
    s.set_defaults(func=cmd_apply)

    s = sub.add_parser("db", help="run nsgre's topology database (an OVSDB: standalone, or "
                       "a raft cluster as OVN runs its own)")
    s.add_argument("action", choices=["create", "join", "status", "stop", "listen", "upgrade"],
                   help="upgrade: convert a database an older nsgre made to this one's "
                        "schema, online, and fill what the new schema adds")
    s.add_argument("dir", help="where its files go (database, sockets, pids, logs)")
    s.add_argument("--target", help="listen: what every member serves besides its own "
                   "socket (ptcp:6641, or punix:NAME: a socket in each member's directory)")
    s.add_argument("--probe", type=int, metavar="MS",
                   help="listen: drop a client silent this long, twice over (its locks go "
                        "to the next in line); create, join with --tls: the same for TLS "
                        "clients, at the gate (default 5000)")
    s.add_argument("--cluster", type=int, default=0, metavar="N",
                   help="create: N members of a raft cluster on this machine")
    s.add_argument("--address", help="create, join: the IP the members talk raft on")
    s.add_argument("--port", type=int, default=6641,
                   help="create, join: raft port (create: the first member's; the next "
                        "ones count up)")
    s.add_argument("--peer", help="join: a member's raft address, tcp:IP:PORT")
    s.add_argument("--tls", default="", metavar="DIR",
                   help="create, join: the members' credentials (nsgre pki controller NAME): raft "
                        "over ssl:, and pssl: remotes served by nsgre's gate beside each "
                        "member: a certificate from the CA and not revoked; readers may "
                        "only read; hosts get nothing")
    s.add_argument("--remote", action="append", default=[], metavar="REMOTE",
                   help="create, join: serve clients here too (e.g. ptcp:6640:IP), "
                        "besides each member's Unix socket (create --cluster N: the "
                        "members on ports counting up from it)")
    s.set_defaults(func=cmd_db)

    for kind, helptext in (("endpoint", "a VM or namespace"), ("network", "a network"),
                           ("host", "a host")):
        s = sub.add_parser(kind, help=f"add or delete {helptext} of the topology in force, "
                           "validated with it as a whole (the loader's messages)")
        s.add_argument("action", choices=["add", "del"])
        s.add_argument("name")
        s.add_argument("--db", metavar="REMOTES",
                       help="nsgre's topology database (OVSDB remotes, comma-separated); "
                            "without it, the running controller (which keeps the change "
                            "in its topology file)")
        with_controller(s)
        if kind == "endpoint":
            s.add_argument("--host")
            s.add_argument("--kind", choices=["vm", "namespace"], default="vm")
            s.add_argument("--network")
            s.add_argument("--ip", help="address/prefix in the network")
            s.add_argument("--vlan", action="append", metavar="VID:NETWORK:IP/PREFIX",
                           help="a trunk: one per guest VLAN")
            s.add_argument("--mac")
            s.add_argument("--port", help="bridge port name")
            s.add_argument("--iface-id", help="external_ids:iface-id (default: the name)")
            s.add_argument("--link-local", help="IPv6 link-local address")
        elif kind == "network":
            s.add_argument("--key", type=int, help="tunnel key (default: allocated)")
            s.add_argument("--router", help="the member endpoint that routes it")
            s.add_argument("--no-dhcp", action="store_true")
            s.add_argument("--dns", action="append", metavar="ADDRESS")
            s.add_argument("--lease-time", type=int, metavar="SECONDS")
            s.add_argument("--mtu", type=int)
        else:
            s.add_argument("--underlay-ip")
            s.add_argument("--dpid", type=int)
        s.set_defaults(func=cmd_object)

    s = sub.add_parser("draw", help="draw the topology: hosts as boxes holding their VMs "
                       "and namespaces, one colour per network, tunnels labelled with keys",
                       description="Draw the topology with Graphviz (Debian package graphviz): "
                       "each host a box labelled with its underlay address, holding its VMs "
                       "(3-D boxes) and namespaces (ovals); each network one colour, listed "
                       "with its tunnel key in the legend; a line between two hosts for each "
                       "tunnel that carries a network both hold, labelled with those keys.")
    s.add_argument("file", nargs="?", help="topology YAML (default: embedded seed)")
    s.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="picture to write; the format follows the suffix: .svg or .png")
    s.set_defaults(func=cmd_draw)

    s = sub.add_parser("trace", help="follow a packet from an endpoint hop by hop through "
                       "the flows the model gives every host (offline, like ovn-trace)",
                       description="Build the packet SRC would send to DST from the model, run "
                       "it through every host's computed flows (ports numbered as in a fully "
                       "wired fabric) and explain each table step, each output and the verdict. "
                       "DST is an endpoint, an IP address (resolved in SRC's network) or a MAC "
                       "address (used as the destination MAC as given). Exit status 0 whenever "
                       "the trace ran, whatever its verdict.")
    s.add_argument("where", nargs="+", metavar="[TOPO] SRC DST",
                   help="optional topology file, the sending endpoint, and an endpoint, "
                        "IP address or MAC address")
    with_topology(s)
    s.add_argument("--proto", default="icmp", metavar="icmp|arp|dhcp|tcp:PORT|udp:PORT",
                   help="what to send (default: %(default)s; arp: a broadcast ARP request; "
                        "dhcp: a DHCPDISCOVER)")
    s.add_argument("--vlan", type=int, metavar="V",
                   help="trunk SRC: the guest VLAN to send on; access SRC: send a tagged frame")
    s.add_argument("--live", action="store_true",
                   help="trace through the flows installed on the switches (asks the "
                        "controller) and say where that differs from the model")
    with_controller(s)
    s.add_argument("--json", action="store_true", help="print the trace as JSON")
    s.set_defaults(func=cmd_trace)
    return p


def _stdout_broken() -> bool:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    return False


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "client_tls", ""):
        from nsgre_core.credentials import Credentials, CredentialsError
        try:
            api.use(Credentials(args.client_tls))
            from osken_apps import ovsdb_rpc      # --db ssl: remotes too
            ovsdb_rpc.use(Credentials(args.client_tls))
        except CredentialsError as exc:
            raise SystemExit(f"nsgre: --tls: {exc}")
    try:
        return args.func(args)
    except BrokenPipeError:
        # `nsgre flows | head` ends quietly.  SIGPIPE stays ignored, as
        # Python leaves it: a server hanging up on a TLS client mid-write
        # (a revoked certificate) must be an error to report, not a death.
        if not _stdout_broken():
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except topology.TopologyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except api.ApiError as exc:
        print(f"nsgre: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
