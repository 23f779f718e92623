"""The interface watch (``ovsdb.watch_interfaces``) against a real
ovsdb-server: whatever a hypervisor does to br-int -- ports plugged and
unplugged, identities set and marks written and removed, the bridge
deleted and made again in one transaction, another bridge busy beside it --
what the watch reports, built from ``monitor_cond`` differences, is what a
full read of the database says."""

import json
import queue
import random
import subprocess
import threading

import pytest

from osken_apps import ovsdb

from conftest import ovsdb_server

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@pytest.fixture
def host_db(tmp_path):
    """A standalone ovsdb-server holding an empty Open_vSwitch database (no
    ovs-vswitchd: nothing here needs a datapath)."""
    with ovsdb_server(tmp_path, SCHEMA) as remote:
        vsctl(remote, "init")
        yield remote


def vsctl(remote, *args):
    return subprocess.run(["ovs-vsctl", "--no-wait", f"--db={remote}", *args],
                          capture_output=True, text=True, check=True).stdout


def listed(remote, table, columns, *records) -> list:
    out = json.loads(vsctl(remote, "--format=json", f"--columns={columns}", "list", table,
                           *records))
    return out["data"]


def refs(datum) -> set:
    return {datum[1]} if datum[0] == "uuid" else {r[1] for r in datum[1]}


def truth(remote, bridge="br-int") -> dict:
    """Interface name -> external_ids of every interface on ``bridge`` (its
    own internal one too), read whole."""
    if bridge not in vsctl(remote, "list-br").split():
        return {}
    (ports,), = listed(remote, "Bridge", "ports", bridge)
    ifaces = set().union(*(refs(i) for u, i in listed(remote, "Port", "_uuid,interfaces")
                           if u[1] in refs(ports)))
    return {name: dict(ext[1]) for u, name, ext in
            listed(remote, "Interface", "_uuid,name,external_ids") if u[1] in ifaces}


class Watching:
    """The watch in a thread of its own; its reports in order."""

    def __init__(self, remote):
        self.reports: queue.Queue = queue.Queue()
        self.stop = False
        self.thread = threading.Thread(target=ovsdb.watch_interfaces, daemon=True, kwargs=dict(
            remote=remote, on_change=lambda now, changed: self.reports.put((now, changed)),
            alive=lambda: not self.stop))
        self.thread.start()
        self.last, _ = self.reports.get(timeout=10)

    def settles_on(self, want: dict) -> dict:
        """The watch's view once it reports ``want`` (or the last it
        reported within a few seconds)."""
        while self.last != want:
            try:
                now, changed = self.reports.get(timeout=3)
            except queue.Empty:
                break
            assert changed is not None
            # every name whose external_ids came, went or changed is named
            # (and perhaps one whose row was made again just the same)
            assert changed >= {n for n in self.last.keys() | now.keys()
                               if self.last.get(n) != now.get(n)}
            self.last = now
        return self.last


def test_the_watch_reports_what_a_full_read_finds_through_a_hypervisors_changes(host_db):
    remote = host_db
    vsctl(remote, "add-br", "br-int", "--", "add-br", "br-sink")
    w = Watching(remote)
    try:
        steps = [
            ["add-port", "br-int", "vnet0", "--", "set", "Interface", "vnet0",
             "external_ids:iface-id=a", "external_ids:attached-mac=02:00:00:00:00:01"],
            ["add-port", "br-int", "p-red"],
            ["set", "Interface", "vnet0", "external_ids:nsgre-installed=true",
             "external_ids:nsgre-installed-ts=1"],
            ["set", "Interface", "vnet0", "external_ids:iface-id=b"],
            ["remove", "Interface", "vnet0", "external_ids", "nsgre-installed",
             "nsgre-installed-ts"],
            ["add-port", "br-sink", "s1"],                     # another bridge: nothing here
            ["del-port", "br-int", "vnet0", "--", "add-port", "br-int", "vnet0", "--",
             "set", "Interface", "vnet0", "external_ids:iface-id=c"],   # made again
            ["del-br", "br-int", "--", "add-br", "br-int", "--",
             "add-port", "br-int", "vnet1"],                   # the bridge reset
            ["del-port", "br-int", "vnet1", "--", "add-port", "br-sink", "vnet1"],
        ]
        for step in steps:
            vsctl(remote, *step)
            assert w.settles_on(truth(remote)) == truth(remote), step
        rng = random.Random(7)
        names = [f"vnet{i}" for i in range(6)]
        for i in range(60):
            name = rng.choice(names)
            bridge = rng.choice(["br-int", "br-int", "br-sink"])
            there = truth(remote, "br-int").keys() | truth(remote, "br-sink").keys()
            if name in there:
                step = rng.choice([["del-port", name],
                                   ["set", "Interface", name, f"external_ids:iface-id=e{i}"],
                                   ["remove", "Interface", name, "external_ids", "iface-id"]])
            else:
                step = ["add-port", bridge, name, "--", "set", "Interface", name,
                        f"external_ids:iface-id=e{i}"]
            vsctl(remote, *step)
            assert w.settles_on(truth(remote)) == truth(remote), step
    finally:
        w.stop = True
        vsctl(remote, "add-port", "br-sink", "wake")          # an update: the thread sees stop
        w.thread.join(timeout=10)
