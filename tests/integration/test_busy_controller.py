"""The controller keeps serving its switches while it validates a large
topology: validation runs off its event loop."""

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import topology
from conftest import ROOT, ns
from test_hitless import wait_programmed

SEED_ENDPOINTS = topology.seed_text().split("endpoints:\n", 1)[1]


def large_file(path: Path, networks=3000, per_network=10) -> Path:
    """The seed plus 30,000 endpoints in 3,000 networks on a host that is
    not emulated: a file that takes seconds to validate and changes nothing
    on the seed's hosts but their tunnels."""
    lines = ["tunnel: gre", "hosts:", "  kvm1: {underlay_ip: 198.18.0.1}",
             "  kvm2: {underlay_ip: 198.18.0.2}", "  kvm9: {underlay_ip: 198.18.0.9}",
             "networks:", "  net10: {key: 10}", "  net20: {key: 20}"]
    lines += [f"  big{i}: {{}}" for i in range(networks)]
    lines += ["endpoints:", SEED_ENDPOINTS.rstrip("\n")]
    lines += [f"  b{i}e{j}: {{host: kvm9, kind: vm, network: big{i}, ip: 10.2.0.{j + 1}/24}}"
              for i in range(networks) for j in range(per_network)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def seed(up, controller, tmp_path):
    """The seed, programmed by a controller started as the README says, its
    API on a socket of the test's own."""
    api = tmp_path / "api.sock"
    ctl = controller("osken_apps/nsgre_app.py",
                     extra=["--user-flags", "osken_apps/flags.py", "--nsgre-api", str(api)])
    topo = topology.load()
    emu = up(topo, controller=ctl.target)
    wait_programmed(ctl, topo.hosts)
    return ctl, emu, api, topo


def test_a_port_power_cycled_while_a_large_file_is_validated_gets_its_flows_back_meanwhile(
        seed, tmp_path):
    ctl, emu, api, topo = seed
    big = large_file(tmp_path / "big.yaml")
    vm1 = topo.endpoint("vm1")
    ovs = emu.ovs[vm1.host]
    result = {}

    def apply():
        result["run"] = subprocess.run(
            [sys.executable, "-m", "nsgre_tools.cli", "apply", str(big), "--controller",
             str(api)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    applying = threading.Thread(target=apply)
    applying.start()
    deadline = time.monotonic() + 20
    while "apply: validating off the event loop" not in ctl.log.read_text():
        assert time.monotonic() < deadline, ctl.log.read_text()
        time.sleep(0.02)
    ovs.vsctl("del-port", "br-int", vm1.port)
    ovs.vsctl("add-port", "br-int", vm1.port)      # a new OpenFlow port number
    back = time.monotonic()
    while ns("blue", "ping", "-c", "1", "-W", "0.2", "10.1.1.2", check=False).returncode:
        assert time.monotonic() - back < 1.0, "vm1 unreachable 1 s after its port came back"
    served = time.monotonic() - back
    still_validating = applying.is_alive()
    applying.join()
    run = result["run"]
    assert run.returncode == 0, run.stderr
    assert "3 hosts, 3002 networks, 30004 endpoints" in run.stdout
    log = ctl.log.read_text()
    start = log.index("apply: validating off the event loop")
    synced = log.index("kvm1 1 networks updated", start)
    applied = log.index("reloaded: 3 hosts", start)
    # the port's networks were synced while the file was being validated
    assert start < synced < applied, log[start:]
    assert still_validating, f"the apply ended before vm1 was reachable again ({served:.2f} s)"


def test_a_port_flapping_1000_times_in_10_s_is_dampened_and_another_hosts_new_endpoint_is_served(
        seed, tmp_path):
    ctl, emu, api, old = seed
    # vm1's port leaves kvm1's bridge and comes back 500 times (a guest
    # power-cycled in a loop): about 1,000 port events in 10-15 s.  (Its link
    # going down and up changes no port number: that costs nothing at all.)
    vsctl = f"ovs-vsctl --db={emu.ovs['kvm1'].db} --no-wait"
    flapper = subprocess.Popen(
        ["sh", "-c", f"for i in $(seq 500); do {vsctl} del-port br-int p-vm1; sleep 0.01; "
                     f"{vsctl} add-port br-int p-vm1; sleep 0.01; done"])
    time.sleep(2)
    grown = tmp_path / "grown.yaml"
    grown.write_text(topology.seed_text() + "  yellow: {host: kvm2, kind: namespace, "
                     "network: net10, ip: 10.1.1.3/24}\n")
    emu.apply(topology.load(grown, previous=old))
    run = subprocess.run([sys.executable, "-m", "nsgre_tools.cli", "apply", str(grown),
                          "--controller", str(api)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    applied = time.monotonic()
    while ns("yellow", "ping", "-c", "1", "-W", "0.2", "10.1.1.1", check=False).returncode:
        assert time.monotonic() - applied < 1.0, "yellow (kvm2) unreachable 1 s after the apply"
    assert flapper.poll() is None, "the port stopped flapping before the check"
    assert flapper.wait(timeout=60) == 0
    time.sleep(5.5)                                       # the longest hold, once it settles
    log = ctl.log.read_text()
    diff = subprocess.run([sys.executable, "-m", "nsgre_tools.cli", "diff", "--controller",
                           str(api)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert diff.returncode == 0, diff.stdout
    syncs = len(re.findall(r"nsgre: kvm1 \d+ networks updated", log))
    lines = len(re.findall(r"kvm1 port p-vm1", log))
    flaps = int(re.search(r'nsgre_port_flaps_total\{host="kvm1",port="p-vm1"\} (\d+)',
                          subprocess.run([sys.executable, "-m", "nsgre_tools.cli", "metrics",
                                          "--controller", str(api)], capture_output=True,
                                         text=True, cwd=ROOT).stdout).group(1))
    assert syncs < 30 and lines < 40, (syncs, lines)     # one of each per event before: ~1,000
    assert flaps > 500, flaps
    assert "kvm1 port p-vm1 is flapping" in log
    ok = ns("blue", "ping", "-c", "1", "-W", "1", "10.1.1.2", check=False)
    assert ok.returncode == 0, "vm1 unreachable once its port settled"
