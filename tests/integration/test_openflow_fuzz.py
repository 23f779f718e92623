"""Malformed OpenFlow and HTTP thrown at a running controller
(``openflow_fuzz``) while the seed fabric carries pings across its tunnel:
none lost, the fabric in sync afterwards, the controller alive and its
event loop answering throughout."""

import contextlib
import random
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import topology

import openflow_fuzz
from conftest import ns
from osken_apps.guard import Strikes

SEED = topology.load()
MESSAGES = 10_000
PEERS = 4                      # connections at once


def nsgre(*args):
    return subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args],
                          capture_output=True, text=True)


@contextlib.contextmanager
def pings_across_the_tunnel():
    """blue (kvm2) pings vm1 (kvm1) every 10 ms while the block runs; the
    counts, once it is over, in the dict it yields."""
    pinging = subprocess.Popen(["ip", "netns", "exec", "blue", "ping", "-i", "0.01", "-w", "600",
                                "-q", "10.1.1.2"], stdout=subprocess.PIPE, text=True)
    counts: dict = {}
    try:
        yield counts
    finally:
        pinging.send_signal(2)
        out, _ = pinging.communicate(timeout=10)
        counts["out"] = out
        counts["sent"] = int(out.split(" packets transmitted")[0].split()[-1])
        counts["received"] = int(out.split(" received")[0].split()[-1])


def assert_untouched(emu, pings, at_least: int):
    """No ping lost, the fabric in sync, the controller alive, no traceback."""
    _, api, log = emu.controller_files(1)
    assert pings["sent"] > at_least and pings["received"] == pings["sent"], pings["out"]
    diff = nsgre("diff", "--controller", str(api))
    assert diff.returncode == 0, diff.stdout
    assert emu.controller_pid(1) is not None
    assert ns("blue", "ping", "-c", "1", "-W", "2", "10.1.1.2", check=False).returncode == 0
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def test_ten_thousand_malformed_openflow_messages_lose_no_ping_and_leave_the_fabric_in_sync(up):
    emu = up(SEED)
    sock, api, _ = emu.controller_files(1)
    rng = random.Random(1)
    sent, peers = 0, 0
    # Each peer process connects only as often as the guard lets a peer in
    # at once (``Strikes``: past that it is held off, as a peer hammering the
    # controller should be); then a fresh process takes its place.
    with pings_across_the_tunnel() as pings, \
            ProcessPoolExecutor(PEERS, max_tasks_per_child=Strikes.FREE) as pool:
        while sent < MESSAGES:
            seeds = [random.Random(rng.getrandbits(32)) for _ in range(PEERS)]
            dpids = [0xf000_0000_0000_0000 + peers + k for k in range(PEERS)]
            peers += PEERS
            sent += sum(pool.map(openflow_fuzz.peer, [str(sock)] * PEERS, seeds,
                                 [200] * PEERS, dpids))
            assert nsgre("metrics", "--controller", str(api)).returncode == 0   # answering
    assert sent >= MESSAGES
    assert_untouched(emu, pings, at_least=100)


def test_a_thousand_malformed_api_requests_lose_no_ping_and_leave_the_fabric_in_sync(up):
    emu = up(SEED)
    _, api, _ = emu.controller_files(1)
    rng = random.Random(2)
    with pings_across_the_tunnel() as pings, ThreadPoolExecutor(8) as pool:
        answered = list(pool.map(lambda seed: openflow_fuzz.http_client(
            str(api), random.Random(seed)), [rng.getrandbits(32) for _ in range(1000)]))
        assert nsgre("metrics", "--controller", str(api)).returncode == 0
    assert all(answered), f"{answered.count(False)} requests left hanging"
    assert_untouched(emu, pings, at_least=20)
