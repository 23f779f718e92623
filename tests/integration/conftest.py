"""Fixtures for tests that run the real thing: ovsdb-server and
ovs-vswitchd per emulated host, the os-ken controller, namespaces, packets.

They need root and Open vSwitch; they are marked ``integration`` and run in
``make test`` (and so in CI).  Without root they fail loudly: a skipped
integration test would hide a broken fabric.
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mininet_scenarios import emulation

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def need_root():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (namespaces, Open vSwitch); run `make test` as root",
                    pytrace=False)


def ns(name, *cmd, check=True, timeout=30):
    return subprocess.run(["ip", "netns", "exec", name, *cmd], capture_output=True,
                          text=True, check=check, timeout=timeout)


@contextlib.contextmanager
def ovsdb_server(directory, schema):
    """A standalone ovsdb-server in ``directory`` holding a new database
    of ``schema``; its remote.  Stopped on the way out (by its own handle)."""
    directory = Path(directory)
    path, sock = directory / "ovsdb.db", directory / "ovsdb.sock"
    subprocess.run(["ovsdb-tool", "create", str(path), str(schema)], check=True)
    server = subprocess.Popen(["ovsdb-server", str(path), f"--remote=punix:{sock}",
                               f"--unixctl={directory}/ovsdb.ctl", "--no-chdir",
                               f"--log-file={directory}/ovsdb.log"])
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.02)
        yield f"unix:{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def ping(src, ip, count=2):
    return ns(src, "ping", "-c", str(count), "-i", "0.2", "-W", "2", "-q", ip, check=False)


@pytest.fixture
def up():
    """Bring an emulation up (topology, controller target or None to start
    one, static); always torn down after the test."""
    made = []

    def bring_up(topo, controller=None, static=False, **options):
        emu = emulation.Emulation(topo, static=static, **options)
        made.append(emu)
        emu.up(controller)
        emu.wait_programmed()
        return emu

    yield bring_up
    for emu in made:
        emu.down()


@pytest.fixture
def three_hosts(tmp_path):
    """Three hosts; net10 and net30 reuse the same addresses; a trunk guest
    r2 on kvm2 is in net10 on its VLAN 100 and in net30 on its VLAN 300."""
    path = tmp_path / "three.yaml"
    path.write_text("""\
tunnel: gre
hosts:
  kvm1: {underlay_ip: 198.18.0.1}
  kvm2: {underlay_ip: 198.18.0.2}
  kvm3: {underlay_ip: 198.18.0.3}
networks:
  net10: {key: 10}
  net30: {key: 5000}
endpoints:
  a1: {host: kvm1, kind: vm,        network: net10, ip: 10.1.1.1/24}
  a2: {host: kvm2, kind: namespace, network: net10, ip: 10.1.1.2/24}
  a3: {host: kvm3, kind: vm,        network: net10, ip: 10.1.1.3/24}
  b1: {host: kvm1, kind: namespace, network: net30, ip: 10.1.1.1/24}
  b3: {host: kvm3, kind: vm,        network: net30, ip: 10.1.1.3/24}
  r2: {host: kvm2, kind: vm, vlans: {100: {network: net10, ip: 10.1.1.100/24},
                                     300: {network: net30, ip: 10.1.1.200/24}}}
""")
    return path


class Controller:
    """osken-manager started exactly as the README says, by the test."""

    def __init__(self, tmp_path, app, extra=(), index=0):
        self.sock = tmp_path / "osken.sock"
        self.log = tmp_path / f"osken-{index}.log"
        if self.sock.exists():
            self.sock.unlink()                     # left by a controller that stopped
        cmd = [str(Path(sys.executable).with_name("osken-manager")), *extra,
               "--ofp-listen-host", str(self.sock), "--ofp-tcp-listen-port", "6653", app]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self.sock.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "controller did not listen"
            time.sleep(0.1)

    @property
    def target(self):
        return f"unix:{self.sock}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def controller(tmp_path):
    started = []

    def start(app, extra=()):
        c = Controller(tmp_path, app, extra, index=len(started))
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()
