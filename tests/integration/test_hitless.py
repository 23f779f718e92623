"""A controller restart changes nothing on a fabric that is already right:
no packet is lost while it is away, and it sends no flow-mod when it
comes back."""

import re
import subprocess
import time

import topology


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
    topo = topology.load()
    first = controller("osken_apps/nsgre_app.py")
    up(topo, controller=first.target)
    pings = [continuous_ping("blue", "10.1.1.2", 12), continuous_ping("red", "10.1.2.2", 12)]
    time.sleep(1)
    first.stop()
    time.sleep(5)
    second = controller("osken_apps/nsgre_app.py")
    changes = wait_programmed(second, topo.hosts)
    assert changes == {h: 0 for h in topo.hosts}, second.log.read_text()
    for proc in pings:
        missing, sent = lost(proc)
        assert sent >= 200 and missing == 0, (missing, sent)
