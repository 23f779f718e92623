"""A large emulated fabric for benchmarks: every host its own ovsdb-server
and ovs-vswitchd (as in ``mininet_scenarios``), but only a few endpoints are
real namespaces (``live``); the thousands of others are OVS patch ports
paired into a sink bridge, named as the topology names their ports.  To
OpenFlow a patch port is a port like any other (a name and a number in
the port description), so the controller programs them exactly as it would
VM ports, without 10,000 namespaces and shells.

Runs in its own run directory (``NSGRE_RUN_DIR``, default /run/nsgre-bench)
so it never meets the tests' emulation.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

os.environ.setdefault("NSGRE_RUN_DIR", "/run/nsgre-bench")

from mininet_scenarios import emulation   # noqa: E402
from nsgre_core import pipeline
from nsgre_tools import client as api       # noqa: E402

COOKIE = "cookie=0x4e53000000000000/0xffff000000000000"


class BenchFabric(emulation.Emulation):
    def __init__(self, topo, live=(), absent=(), ha=0):
        """``live``: endpoints that are real namespaces; ``absent``: endpoints
        declared in the topology whose ports are not created (a benchmark
        plugs them in later, as a hypervisor would); ``ha``: that many
        controllers following a raft cluster of the topology database."""
        super().__init__(topo, emulation.RUN_DIR, ha=ha)
        self.live = set(live)
        self.absent = set(absent)
        self._patches: dict[str, list[str]] = {}

    def _endpoint(self, ep):
        if ep.name in self.absent:
            return
        if ep.name in self.live:
            return super()._endpoint(ep)
        self._patches.setdefault(ep.host, []).append(ep.port)

    def up(self, controller=None):
        super().up(controller)
        try:
            for host, ports in self._patches.items():
                self._add_patches(host, ports)
        except BaseException:
            self.down()
            raise

    def _add_patches(self, host: str, ports: list[str]):
        """One OVSDB transaction per 500 ports: patch ``p-x`` on br-int to
        ``s-x`` on br-sink."""
        ovs = self.ovs[host]
        if not self._has_sink(host):
            ovs.vsctl("add-br", "br-sink", "--", "set", "bridge", "br-sink",
                      "datapath_type=netdev", "fail_mode=secure")
        for i in range(0, len(ports), 500):
            args = []
            for port in ports[i:i + 500]:
                sink = "s" + port[1:]
                args += ["--", "add-port", "br-int", port, "--", "set", "interface", port,
                         "type=patch", f"options:peer={sink}",
                         "--", "add-port", "br-sink", sink, "--", "set", "interface", sink,
                         "type=patch", f"options:peer={port}"]
            ovs.vsctl(*args)

    def _has_sink(self, host):
        return "br-sink" in self.ovs[host].vsctl("list-br").split()

    # -- what the benchmarks do to it ---------------------------------------
    def ports(self, host: str) -> dict[str, int]:
        out = self.ovs[host].vsctl("--format=csv", "--no-headings", "--columns=name,ofport",
                                   "list", "Interface")
        ports = {}
        for line in out.splitlines():
            name, ofport = line.split(",")
            if int(ofport) > 0:
                ports[name.strip('"')] = int(ofport)
        return ports

    def counts(self, host: str) -> tuple[int, int]:
        """(nsgre flows, groups) on a host's br-int."""
        flows = self.ovs[host].ofctl("dump-aggregate", COOKIE, check=False)
        n = int(flows.split("flow_count=")[1].split()[0]) if "flow_count=" in flows else -1
        groups = self.ovs[host].ofctl("dump-group-stats", check=False)
        return n, groups.count("group_id=")

    def expected(self, host: str, ports=None) -> tuple[int, int]:
        want = pipeline.compute(self.topo, host, ports if ports is not None else self.ports(host))
        return len(want.flows), len(want.groups)

    def disconnect(self, hosts):
        procs = [subprocess.Popen(["ovs-vsctl", f"--db={self.ovs[h].db}", "del-controller",
                                   "br-int"]) for h in hosts]
        for p in procs:
            p.wait()

    def connect(self, hosts) -> list[subprocess.Popen]:
        return [subprocess.Popen(["ovs-vsctl", f"--db={self.ovs[h].db}", "set-controller",
                                  "br-int", self.ovs[h].controller(self.controller_target)])
                for h in hosts]

    def wipe(self, hosts):
        """Remove every nsgre flow and group (the controller disconnected)."""
        for h in hosts:
            self.ovs[h].ofctl("del-flows", COOKIE)
            self.ovs[h].ofctl("del-groups")

    def wait_counts(self, want: dict[str, tuple[int, int]], start: float,
                    timeout: float = 300) -> dict[str, float]:
        """Poll until each host holds ``want`` (flows, groups); seconds from
        ``start`` at which each got there."""
        done: dict[str, float] = {}
        while len(done) < len(want):
            for h in want:
                if h not in done and self.counts(h) == want[h]:
                    done[h] = time.monotonic() - start
            if time.monotonic() - start > timeout:
                late = sorted(set(want) - set(done))
                raise emulation.EmulationError(
                    f"not programmed after {timeout}s: " + ", ".join(
                        f"{h} holds {self.counts(h)}, wants {want[h]}" for h in late))
            time.sleep(0.02)
        return done

    def restart_controller(self):
        """Stop the controller (by its recorded PID) and start a fresh one:
        no pipeline computed, nothing cached."""
        emulation._stop_process(self.controller_pid(), "nsgre_tools.cli")
        for sock in ("osken.sock", "api.sock"):     # so the wait below sees the new ones
            (self.run_dir / sock).unlink(missing_ok=True)
        self.controller_target = self._start_controller()

    def wait_prepared(self, hosts, start: float, timeout: float = 120) -> float:
        """Seconds from ``start`` until the controller logged every host as
        prepared from OVSDB (see ``Controller._prepare_chunk``)."""
        deadline = start + timeout
        while True:
            text = self.controller_log().read_text(errors="replace")
            if all(f"nsgre: {h} prepared before its switch connected" in text for h in hosts):
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise emulation.EmulationError(
                    f"controller did not prepare every host in {timeout}s:\n{text[-2000:]}")
            time.sleep(0.02)

    def controller_log(self) -> Path:
        return self.run_dir / "osken.log"

    def connections_logged(self, offset: int) -> dict[str, float]:
        """Host -> when the controller logged its (first) connection after
        byte ``offset`` of its log (``%(asctime)s``, local time, ms)."""
        import datetime
        text = self.controller_log().read_bytes()[offset:].decode(errors="replace")
        found = {}
        for line in text.splitlines():
            if " connected (datapath " in line and " nsgre: " in line:
                stamp, rest = line.split(" nsgre: ", 1)
                host = rest.split()[0]
                when = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.setdefault(host, when)
        return found

    def controller_pid(self) -> int:
        """The controller running now (the last one started)."""
        return [p["pid"] for p in self.state.data["processes"]
                if p["what"] == "nsgre_tools.cli"][-1]

    def controller_peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.controller_pid()}/status").read_text()
        kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
        return kb / 1024

    def api(self, method: str, path: str, body: str | None = None):
        return api.request(str(self.run_dir / "api.sock"), method, path, body)

    def flow_mods_sent(self) -> int:
        for attempt in range(5):
            try:
                text = api.request_text(str(self.run_dir / "api.sock"), "/metrics")
                break
            except api.ApiError as exc:       # seen once under load: connection reset
                print(f"GET /metrics: {exc}; again", flush=True)
                time.sleep(1)
        else:
            raise emulation.EmulationError("the controller's API does not answer")
        return sum(int(float(line.split()[-1])) for line in text.splitlines()
                   if line.startswith("nsgre_flow_mods_sent_total"))
