"""A controller restart changes nothing on a fabric that is already right:
no packet is lost while it is away, and it sends no flow-mod when it
comes back."""

import re
import signal
import subprocess
import sys
import time

import topology
from mininet_scenarios import emulation


def seed_plus_net30(path):
    """The seed plus net30, with green on kvm1 and yellow on kvm2 reusing
    net10's addresses."""
    path.write_text(
        topology.seed_text().replace("  net20: {key: 20}\n", "  net20: {key: 20}\n  net30: {}\n")
        + "  green:  {host: kvm1, kind: vm,        network: net30, ip: 10.1.1.1/24}\n"
        + "  yellow: {host: kvm2, kind: namespace, network: net30, ip: 10.1.1.2/24}\n")
    return path


def continuous_ping(src, ip, seconds):
    """A ping every 50 ms for ``seconds``; returns the process."""
    return subprocess.Popen(["ip", "netns", "exec", src, "ping", "-q", "-i", "0.05", "-W", "1",
                             "-c", str(int(seconds / 0.05)), ip],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def lost(proc):
    out, _ = proc.communicate(timeout=60)
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
    return sent - received, sent


def wait_programmed(ctl, hosts, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        text = ctl.log.read_text()
        done = {h: re.search(rf"nsgre: {h} programmed: .*\((\d+) changes sent", text)
                for h in hosts}
        if all(done.values()):
            return {h: int(m.group(1)) for h, m in done.items()}
        assert time.monotonic() < deadline, text
        time.sleep(0.1)


def test_a_controller_restart_loses_no_packet_and_sends_no_flow_mod(up, controller):
    """...and, told where each host's OVSDB is, the new controller computes
    the pipelines from the port numbers there before the switches are back."""
    topo = topology.load()
    first = controller("osken_apps/nsgre_app.py")
    up(topo, controller=first.target)
    pings = [continuous_ping("blue", "10.1.1.2", 12), continuous_ping("red", "10.1.2.2", 12)]
    time.sleep(1)
    first.stop()
    time.sleep(5)
    second = controller("osken_apps/nsgre_app.py", extra=[
        "--user-flags", "osken_apps/flags.py",
        "--nsgre-ovsdb", f"unix:{emulation.RUN_DIR}/hosts/{{host}}/db.sock"])
    changes = wait_programmed(second, topo.hosts)
    assert changes == {h: 0 for h in topo.hosts}, second.log.read_text()
    log = second.log.read_text()
    for host in topo.hosts:
        networks = len(topo.networks_on(host))
        assert re.search(rf"nsgre: {host} prepared before its switch connected: {networks} "
                         r"networks, \d+ ports from OVSDB", log), log
        assert log.index(f"{host} prepared") < log.index(f"{host} connected"), log
    assert "tunnels in step" not in log      # they were: only read, never written
    for proc in pings:
        missing, sent = lost(proc)
        assert sent >= 200 and missing == 0, (missing, sent)


def nsgre_flows(emu, host):
    out = emu.ovs[host].ofctl("dump-flows", "cookie=0x4e53000000000000/0xffff000000000000",
                              "--no-stats", check=False)
    return sorted(line.strip() for line in out.splitlines() if "cookie=" in line)


def test_a_restarted_switch_is_fully_programmed_within_2_seconds(up):
    topo = topology.load()
    emu = up(topo)
    before = nsgre_flows(emu, "kvm1")
    emu.ovs["kvm1"].kill_switch()
    started = time.monotonic()
    emu.restart_switch("kvm1")
    while nsgre_flows(emu, "kvm1") != before:
        assert time.monotonic() - started < 2.0, "kvm1 not reprogrammed within 2 s"
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    while subprocess.run(["ip", "netns", "exec", "blue", "ping", "-c", "1", "-W", "1",
                          "10.1.1.2"], capture_output=True).returncode:
        assert time.monotonic() < deadline


def test_flows_changed_by_hand_are_repaired_within_the_audit_interval(up):
    topo = topology.load()
    emu = up(topo)
    ovs = emu.ovs["kvm1"]
    before = nsgre_flows(emu, "kvm1")
    vm1 = topo.endpoint("vm1")
    # delete vm1's delivery flow, and blackhole it with a flow that claims to be ours
    ovs.ofctl("del-flows", "--strict", f"table=3,priority=100,dl_dst={vm1.mac},dl_vlan=10")
    assert len(nsgre_flows(emu, "kvm1")) == len(before) - 1
    ovs.ofctl("add-flow", f"cookie=0x4e53020000000001,table=3,priority=200,dl_dst={vm1.mac},"
                          "actions=drop")
    assert len(nsgre_flows(emu, "kvm1")) == len(before)
    started = time.monotonic()
    while nsgre_flows(emu, "kvm1") != before:
        assert time.monotonic() - started < 5 + 2, "not repaired within the audit interval"
        time.sleep(0.1)
    assert subprocess.run(["ip", "netns", "exec", "blue", "ping", "-c", "2", "-W", "1",
                           "10.1.1.2"], capture_output=True).returncode == 0


def test_a_network_added_on_sighup_works_and_no_other_traffic_loses_a_packet(
        up, controller, tmp_path):
    path = tmp_path / "fabric.yaml"
    path.write_text(topology.seed_text())
    ctl = controller("osken_apps/nsgre_app.py",
                     extra=["--user-flags", "osken_apps/flags.py", "--nsgre-topology", str(path)])
    old = topology.load(path)
    emu = up(old, controller=ctl.target)
    wait_programmed(ctl, old.hosts)
    seed_plus_net30(path)
    new = topology.load(path, previous=old)
    pings = [continuous_ping("blue", "10.1.1.2", 8), continuous_ping("red", "10.1.2.2", 8)]
    time.sleep(0.5)
    emu.apply(new)                                    # the namespaces and their ports
    before = ctl.log.read_text()
    ctl.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while subprocess.run(["ip", "netns", "exec", "green", "ping", "-c", "1", "-W", "0.5",
                          "10.1.1.2"], capture_output=True).returncode:
        assert time.monotonic() < deadline, ctl.log.read_text()
    for proc in pings:
        missing, sent = lost(proc)
        assert missing == 0, (missing, sent)
    after = ctl.log.read_text()[len(before):]
    assert "reloaded: 2 hosts, 3 networks, 6 endpoints" in after
    # only the delta went out: a few dozen flow-mods, not the whole pipeline again
    sent = [int(n) for n in re.findall(r"\((\d+) changes sent", after)]
    assert sent and max(sent) < 20, after


def test_a_bad_file_on_sighup_changes_nothing(up, controller, tmp_path):
    path = tmp_path / "fabric.yaml"
    path.write_text(topology.seed_text())
    ctl = controller("osken_apps/nsgre_app.py",
                     extra=["--user-flags", "osken_apps/flags.py", "--nsgre-topology", str(path)])
    emu = up(topology.load(path), controller=ctl.target)
    wait_programmed(ctl, ["kvm1", "kvm2"])
    before = nsgre_flows(emu, "kvm1")
    path.write_text(topology.seed_text().replace("host: kvm1, kind: vm", "host: kvm9, kind: vm"))
    ctl.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in ctl.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "endpoints.vm1.host: unknown host 'kvm9'" in ctl.log.read_text()
    assert nsgre_flows(emu, "kvm1") == before
    assert subprocess.run(["ip", "netns", "exec", "blue", "ping", "-c", "1", "-W", "1",
                           "10.1.1.2"], capture_output=True).returncode == 0


def nsgre(*args):
    return subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_nsgre_apply_validates_then_programs_only_the_delta(up, controller, tmp_path):
    api = tmp_path / "api.sock"
    ctl = controller("osken_apps/nsgre_app.py",
                     extra=["--user-flags", "osken_apps/flags.py", "--nsgre-api", str(api)])
    old = topology.load()
    emu = up(old, controller=ctl.target)
    wait_programmed(ctl, old.hosts)
    before = nsgre_flows(emu, "kvm1")

    bad = tmp_path / "bad.yaml"
    bad.write_text(topology.seed_text().replace("net20: {key: 20}", "net20: {key: 0}"))
    result = nsgre("apply", str(bad), "--api", str(api))
    assert result.returncode == 1
    assert f"{bad}:10: networks.net20.key: must be an integer" in result.stderr
    assert nsgre_flows(emu, "kvm1") == before

    good = seed_plus_net30(tmp_path / "good.yaml")
    emu.apply(topology.load(good, previous=old))
    pings = [continuous_ping("blue", "10.1.1.2", 4)]
    result = nsgre("apply", str(good), "--api", str(api))
    assert result.returncode == 0, result.stderr
    assert "applied: 2 hosts, 3 networks, 6 endpoints, tunnel gre; changes sent: kvm1" in result.stdout
    assert subprocess.run(["ip", "netns", "exec", "green", "ping", "-c", "2", "-W", "1",
                           "10.1.1.2"], capture_output=True).returncode == 0
    assert lost(pings[0])[0] == 0


def test_nsgre_apply_says_in_one_line_when_the_controller_is_unreachable(tmp_path):
    result = nsgre("apply", topology.loader.__file__.replace("loader.py", "seed.yaml"),
                   "--api", str(tmp_path / "nobody.sock"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unreachable" in result.stderr


THIRD_HOST = """\
  kvm3: {underlay_ip: 198.18.0.3}
"""


def test_apply_to_a_kept_emulation_adds_and_removes_a_host_without_losing_a_packet(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "mininet_scenarios", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    seed = topology.seed_text()
    grown = tmp_path / "grown.yaml"
    grown.write_text(seed.replace("  kvm2: {underlay_ip: 198.18.0.2}\n",
                                  "  kvm2: {underlay_ip: 198.18.0.2}\n" + THIRD_HOST)
                     + "  vm3:  {host: kvm3, kind: vm, network: net10, ip: 10.1.1.3/24}\n")
    back = tmp_path / "back.yaml"
    back.write_text(seed)
    assert run("--keep").returncode == 0
    try:
        pings = [continuous_ping("blue", "10.1.1.2", 10), continuous_ping("red", "10.1.2.2", 10)]
        result = run("--apply", str(grown))
        assert result.returncode == 0, result.stderr
        assert "emulation now 3 hosts, 2 networks, 5 endpoints" in result.stdout
        deadline = time.monotonic() + 10
        while subprocess.run(["ip", "netns", "exec", "vm3", "ping", "-c", "1", "-W", "0.5",
                              "10.1.1.1"], capture_output=True).returncode:
            assert time.monotonic() < deadline, "vm3 on the new host kvm3 unreachable"
        result = run("--apply", str(back))
        assert result.returncode == 0, result.stderr
        assert "kvm3" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                            text=True).stdout
        for proc in pings:
            missing, sent = lost(proc)
            assert missing == 0, (missing, sent)
    finally:
        assert run("--down").returncode == 0


def test_the_controller_removes_and_restores_tunnel_ports_over_ovsdb_as_hosts_leave_and_join(
        up, controller, tmp_path):
    api = tmp_path / "api.sock"
    ctl = controller("osken_apps/nsgre_app.py",
                     extra=["--user-flags", "osken_apps/flags.py", "--nsgre-api", str(api),
                            "--nsgre-ovsdb", f"unix:{emulation.RUN_DIR}/hosts/{{host}}/db.sock"])
    seed = topology.load()
    emu = up(seed, controller=ctl.target)
    wait_programmed(ctl, seed.hosts)
    kvm1 = emu.ovs["kvm1"]
    alone = tmp_path / "alone.yaml"          # kvm2 leaves, with its endpoints
    alone.write_text("hosts:\n  kvm1: {underlay_ip: 198.18.0.1}\n"
                     "networks:\n  net10: {key: 10}\n  net20: {key: 20}\n"
                     "endpoints:\n"
                     "  vm1: {host: kvm1, kind: vm, network: net10, ip: 10.1.1.2/24}\n"
                     "  red: {host: kvm1, kind: namespace, network: net20, ip: 10.1.2.1/24}\n")
    assert nsgre("apply", str(alone), "--api", str(api)).returncode == 0

    def ports():
        return kvm1.vsctl("list-ports", "br-int").split()

    deadline = time.monotonic() + 5
    while "gre-kvm2" in ports():
        assert time.monotonic() < deadline, ctl.log.read_text()
        time.sleep(0.1)
    # The host that left holds nothing of nsgre's any more: flows and groups
    # went in one bundle the switch accepted.
    kvm2 = emu.ovs["kvm2"]
    while nsgre_flows(emu, "kvm2") or "group_id=" in kvm2.ofctl("dump-groups"):
        assert time.monotonic() < deadline, ctl.log.read_text()
        time.sleep(0.1)
    assert "rejected a message" not in ctl.log.read_text()
    back = tmp_path / "back.yaml"
    back.write_text(topology.seed_text())
    assert nsgre("apply", str(back), "--api", str(api)).returncode == 0
    while "gre-kvm2" not in ports():
        assert time.monotonic() < deadline + 5, ctl.log.read_text()
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while subprocess.run(["ip", "netns", "exec", "blue", "ping", "-c", "1", "-W", "0.5",
                          "10.1.1.2"], capture_output=True).returncode:
        assert time.monotonic() < deadline, ctl.log.read_text()
