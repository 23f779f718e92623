"""The source post's experiment on emulated hosts, with real OVS, the real
os-ken controller and real packets."""

import json
import subprocess
import sys
import time

import topology
from mininet_scenarios import emulation
from mininet_scenarios.check import check, interfaces

from conftest import ROOT, ns, ping


def test_seed_every_same_network_pair_reaches_and_every_cross_network_pair_is_isolated(up):
    topo = topology.load()
    up(topo)
    result = check(topo)
    assert (result.same_ok, result.same_total) == (4, 4), result.table(list(topo.endpoints))
    assert (result.cross_ok, result.cross_total) == (8, 8), result.table(list(topo.endpoints))


def test_blue_on_kvm2_pings_vm1_on_kvm1_through_a_gre_tunnel_keyed_for_net10(up):
    up(topology.load())
    capture = subprocess.Popen(
        ["ip", "netns", "exec", emulation.UNDERLAY_NS, "tcpdump", "-l", "-n", "-i", emulation.underlay_port("kvm2"),
         "-c", "1", "ip proto 47 and ip[54:4] = 0x0a010101"],  # inner IPv4 source 10.1.1.1
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1)
        assert ping("blue", "10.1.1.2").returncode == 0
        out, _ = capture.communicate(timeout=10)
    finally:
        capture.kill()
    assert "GREv0, key=0xa" in out, out        # net10's key, not a VLAN trunk


def test_bridges_are_secure_keyed_by_flow_and_free_of_normal_tags_and_trunks(up):
    topo = topology.load()
    emu = up(topo)
    for host in topo.hosts.values():
        ovs = emu.ovs[host.name]
        assert ovs.vsctl("get", "bridge", "br-int", "fail_mode").strip() == "secure"
        assert ovs.vsctl("get", "bridge", "br-int", "other_config:datapath-id").strip() \
            == f'"{host.dpid:016x}"'
        ports = json.loads(ovs.vsctl("--format=json", "--columns=name,tag,trunks", "list", "port"))
        for name, tag, trunks in ports["data"]:
            assert tag == ["set", []] and trunks == ["set", []], (host.name, name)
        gre = topo.tunnel_port(host.name, next(p.name for p in topo.peers(host.name)))
        assert ovs.vsctl("get", "interface", gre, "type").strip() == "gre"
        assert ovs.vsctl("get", "interface", gre, "options:key").strip() == "flow"
        flows = ovs.ofctl("dump-flows") + ovs.ofctl("dump-groups")
        assert "NORMAL" not in flows and "FLOOD" not in flows


def test_installed_flows_carry_nsgre_cookies_and_match_the_pipeline_in_number(up):
    from nsgre_core import pipeline
    topo = topology.load()
    emu = up(topo)
    for host in topo.hosts:
        ovs = emu.ovs[host]
        lines = [ln for ln in ovs.ofctl("dump-flows").splitlines() if "cookie=" in ln]
        assert lines and all("cookie=0x4e53" in ln for ln in lines)
        ports = {p: 1 for p in emu._port_names(host)}
        assert len(lines) == len(pipeline.compute(topo, host, ports).flows)


def test_a_power_cycled_endpoint_port_gets_its_flows_back_without_any_manual_step(up):
    topo = topology.load()
    emu = up(topo)
    vm1 = topo.endpoint("vm1")
    ovs = emu.ovs[vm1.host]
    old = ovs.vsctl("get", "interface", vm1.port, "ofport").strip()
    ovs.vsctl("del-port", "br-int", vm1.port)
    assert ping("blue", "10.1.1.2", count=1).returncode != 0
    ovs.vsctl("add-port", "br-int", vm1.port)      # same name, new OpenFlow port number
    appeared = time.monotonic()
    new = ovs.vsctl("get", "interface", vm1.port, "ofport").strip()
    assert new != old
    while ns("blue", "ping", "-c", "1", "-W", "0.2", "10.1.1.2", check=False).returncode:
        assert time.monotonic() - appeared < 1.0, "vm1 unreachable 1 s after its port came back"
    assert f"in_port={old}," not in ovs.ofctl("dump-flows")


def test_static_baseline_is_the_source_posts_tags_and_gre_trunk_and_works(up):
    topo = topology.load()
    emu = up(topo, static=True)
    ovs = emu.ovs["kvm1"]
    assert ovs.vsctl("get", "port", "gre0", "trunks").strip() == "[10, 20]"
    assert ovs.vsctl("get", "port", topo.endpoint("vm1").port, "tag").strip() == "10"
    result = check(topo)
    assert result.passed, result.table(list(topo.endpoints))


def test_app_loads_by_module_name_with_a_topology_file_on_three_hosts(up, controller, three_hosts):
    ctl = controller("osken_apps.nsgre_app",
                     extra=["--user-flags", str(ROOT / "osken_apps/flags.py"),
                            "--nsgre-topology", str(three_hosts)])
    topo = topology.load(three_hosts)
    up(topo, controller=ctl.target)
    result = check(topo)
    # net30 reuses net10's addresses; isolation is read at the receivers.
    labels = [i.label for i in interfaces(topo)]
    assert result.passed, result.table(labels)
    assert "r2.100" in labels and "r2.300" in labels
    # net10: a1 a2 a3 r2.100 -> 12 ordered pairs; net30: b1 b3 r2.300 -> 6
    assert (result.same_ok, result.same_total, result.cross_total) == (18, 18, 24)


def test_app_loads_by_file_path_as_the_readme_starts_it(up, controller):
    ctl = controller("osken_apps/nsgre_app.py")
    topo = topology.load()
    up(topo, controller=ctl.target)
    assert ping("vm2", "10.1.2.1").returncode == 0
    assert "kvm1 programmed" in ctl.log.read_text()


def run_scenario(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mininet_scenarios", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_keep_leaves_it_running_and_down_removes_every_namespace_and_process():
    kept = run_scenario("--keep")
    assert kept.returncode == 0, kept.stderr
    state = emulation.State.read()
    try:
        assert set(state.data["namespaces"]) <= emulation.existing_netns()
        assert ping("blue", "10.1.1.2").returncode == 0
    finally:
        assert run_scenario("--down").returncode == 0
    assert not set(state.data["namespaces"]) & emulation.existing_netns()
    for proc in state.data["processes"]:
        assert proc["what"] not in emulation._cmdline(proc["pid"])


def test_a_new_run_first_clears_what_a_crashed_run_left():
    crashed = subprocess.Popen([sys.executable, "-m", "mininet_scenarios", "--keep"], cwd=ROOT)
    deadline = time.monotonic() + 60
    while "blue" not in emulation.existing_netns():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    crashed.kill()                                 # no teardown ran
    crashed.wait()
    result = run_scenario("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(
        "check: 4/4 same-network pairs reachable, 8/8 cross-network pairs isolated")
    assert not {"blue", "kvm1", emulation.UNDERLAY_NS} & emulation.existing_netns()


def test_a_bad_topology_is_refused_naming_file_and_field_and_creates_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(topology.seed_text().replace("host: kvm1, kind: vm", "host: kvm9, kind: vm"))
    before = emulation.existing_netns()
    result = run_scenario(str(bad), "--check")
    assert result.returncode == 1
    assert f"{bad}:12: endpoints.vm1.host: unknown host 'kvm9'" in result.stderr
    assert emulation.existing_netns() == before


def nsgre(*args):
    return subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_prepare_host_is_idempotent_and_replaces_only_its_own_stale_tunnels(up):
    topo = topology.load()
    emu = up(topo)
    ovs = emu.ovs["kvm1"]
    target = ovs.vsctl("get-controller", "br-int").strip()
    before = ovs.vsctl("--columns=name,ofport", "list", "interface")
    # A stale tunnel of ours (a host that left) and a port nsgre does not own.
    ovs.vsctl("add-port", "br-int", "gre-gone", "--", "set", "interface", "gre-gone",
              "type=gre", "options:remote_ip=198.18.0.99", "options:key=flow",
              "--", "set", "port", "gre-gone", "external_ids:nsgre-peer=gone")
    ovs.vsctl("add-port", "br-int", "admin0", "--", "set", "interface", "admin0", "type=internal")
    result = nsgre("prepare-host", "kvm1", "--db", ovs.db, "--controller", target,
                   "--datapath-type", "netdev")
    assert result.returncode == 0, result.stderr
    assert "kvm1: br-int datapath 00000000c6120001" in result.stdout
    ports = ovs.vsctl("list-ports", "br-int").split()
    assert "gre-gone" not in ports and "admin0" in ports
    ovs.vsctl("del-port", "br-int", "admin0")
    after = ovs.vsctl("--columns=name,ofport", "list", "interface")
    assert sorted(after.split("\n\n")) == sorted(before.split("\n\n"))   # same ports, same numbers
    assert ping("blue", "10.1.1.2").returncode == 0


def test_cli_opens_mininet_with_every_host_and_endpoint_as_a_node():
    result = subprocess.run([sys.executable, "-m", "mininet_scenarios", "--cli"], cwd=ROOT,
                            input="nodes\nblue ping -c 1 vm1\nexit\n",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr           # mininet's CLI writes to both
    assert f"blue kvm1 kvm2 {emulation.UNDERLAY_NS} red vm1 vm2" in out
    assert "1 packets transmitted, 1 received" in out
    assert not {"blue", "kvm1"} & emulation.existing_netns()


def test_arp_is_answered_on_the_asking_host_and_never_crosses_a_tunnel(up):
    topo = topology.load()
    up(topo)
    capture = subprocess.Popen(
        ["ip", "netns", "exec", emulation.UNDERLAY_NS, "tcpdump", "-l", "-n", "-i", "br0",
         "ip proto 47 and ip[40:2] = 0x0806"],               # ARP inside GRE (TEB)
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1)
        ns("blue", "ip", "neigh", "flush", "all")
        assert ping("blue", "10.1.1.2").returncode == 0
        neigh = ns("blue", "ip", "neigh", "show", "10.1.1.2").stdout
        assert topo.endpoint("vm1").mac in neigh
        time.sleep(0.5)
    finally:
        capture.terminate()
    out, _ = capture.communicate(timeout=10)
    assert out.strip() == "", out


def test_a_spoofed_source_address_does_not_get_through(up):
    topo = topology.load()
    up(topo)
    # blue claims vm2's address (another network) and then a free one in its own
    ns("blue", "ip", "addr", "add", "10.1.1.77/24", "dev", "eth0")
    result = ns("blue", "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "10.1.1.77",
                "10.1.1.2", check=False)
    assert result.returncode != 0
    # Its own address still works (once the kernel stops resolving vm1's MAC
    # with the forged address as the ARP sender, which is dropped too).
    ns("blue", "ip", "addr", "del", "10.1.1.77/24", "dev", "eth0")
    ns("blue", "ip", "neigh", "flush", "all")
    assert ping("blue", "10.1.1.2").returncode == 0


def test_nsgre_show_reports_hosts_networks_and_endpoints_of_the_running_fabric():
    assert run_scenario("--keep").returncode == 0
    try:
        result = nsgre("show")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "kvm1: connected, datapath 00000000c6120001, underlay 198.18.0.1" in out
        assert "tunnel gre-kvm2 -> kvm2 (ofport 1)" in out
        assert "net10: key 10; kvm1 vlan 10, kvm2 vlan 10" in out
        vm1 = topology.load().endpoint("vm1")
        assert f"vm1: vm on kvm1, port p-vm1 (ofport 3, installed), {vm1.mac}, net10 10.1.1.2/24" in out
    finally:
        assert run_scenario("--down").returncode == 0
    gone = nsgre("show")
    assert gone.returncode == 1 and "unreachable" in gone.stderr
