"""nsgre flows and nsgre diff against a running emulation, through the
controller's API: names instead of numbers, and drift shows."""

import json
import socket
import subprocess
import sys
import time

import pytest

import topology
from mininet_scenarios import emulation

from conftest import ROOT


def nsgre(*args):
    return subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def kept():
    run = lambda *a: subprocess.run([sys.executable, "-m", "mininet_scenarios", *a],  # noqa: E731
                                    cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run("--keep").returncode == 0
    yield emulation.HostOvs(emulation.RUN_DIR, "kvm1")
    assert run("--down").returncode == 0


def test_flows_are_named_by_network_and_endpoint_and_filtered(kept):
    result = nsgre("flows", "--host", "kvm1", "--endpoint", "vm1", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["kvm1"]
    assert rows and all(r["serves"] == "endpoint vm1" for r in rows)
    assert {r["table"] for r in rows} == {0, 1, 3}   # admission, ARP answer, delivery
    text = nsgre("flows", "--host", "kvm1", "--network", "net10", "--table", "2").stdout
    assert "kvm1: 1 flows" in text and "network net10" in text and "push_vlan" in text
    unknown = nsgre("flows", "--host", "kvm9")
    assert unknown.returncode == 1 and "did you mean 'kvm" in unknown.stderr


def test_diff_is_clean_then_shows_a_flow_deleted_by_hand_in_topology_terms(kept):
    assert nsgre("diff").returncode == 0
    vm1 = topology.load().endpoint("vm1")
    kept.ofctl("del-flows", "--strict", f"table=3,priority=100,dl_dst={vm1.mac},dl_vlan=10")
    drift = nsgre("diff")
    assert drift.returncode == 1
    assert "kvm1: 1 differences" in drift.stdout
    assert "missing    endpoint vm1" in drift.stdout
    deadline = time.monotonic() + 8                  # the audit repairs it
    while nsgre("diff").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_trace_live_follows_the_installed_flows_and_says_where_they_differ(kept):
    clean = nsgre("trace", "--live", "vm1", "blue")
    assert clean.returncode == 0, clean.stderr
    assert "verdict: delivered to blue" in clean.stdout and "DIFFERS" not in clean.stdout
    blue = topology.load().endpoint("blue")
    kvm2 = emulation.HostOvs(emulation.RUN_DIR, "kvm2")
    kvm2.ofctl("del-flows", "--strict", f"table=3,priority=100,dl_dst={blue.mac},dl_vlan=10")
    drift = nsgre("trace", "--live", "vm1", "blue")
    assert "verdict: dropped at kvm2 table 3 (forward)" in drift.stdout
    assert "DIFFERS from the model, whose flows give: delivered to blue" in drift.stdout


def test_metrics_count_switches_flows_and_flow_mods(kept):
    result = nsgre("metrics")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "nsgre_switches_connected 2" in lines
    assert "nsgre_topology_version 1" in lines
    assert any(line.startswith('nsgre_flows_installed{host="kvm1",table="0"} ') for line in lines)
    sent = [int(line.split()[-1]) for line in lines
            if line.startswith('nsgre_flow_mods_sent_total{host="kvm1"}')]
    assert sent and sent[0] > 0


def test_the_api_serves_groups_with_counters_and_the_desired_state(kept):
    from nsgre_tools import client as api
    status, groups = api.request(api.DEFAULT, "GET", "/groups")
    assert status == 200
    assert {g["network"] for g in groups["kvm1"]} == {"net10", "net20"}
    assert all(g["packets"] is not None for g in groups["kvm1"])
    status, desired = api.request(api.DEFAULT, "GET", "/desired")
    assert status == 200
    installed = nsgre("flows", "--host", "kvm1", "--json")
    assert len(desired["kvm1"]["flows"]) == len(json.loads(installed.stdout)["kvm1"])
    assert len(desired["kvm1"]["groups"]) == len(groups["kvm1"])


def test_the_controller_outlives_a_client_that_hangs_up_before_the_answer(kept):
    api_sock = str(emulation.RUN_DIR / "api.sock")
    for _ in range(3):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(api_sock)
        client.sendall(b"GET /desired HTTP/1.0\r\n\r\n")
        client.close()                    # gone before the controller writes its answer
        time.sleep(0.5)
    result = nsgre("show", "--controller", api_sock)
    assert result.returncode == 0, result.stderr
