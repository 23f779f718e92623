"""One object at a time through a running file-mode controller's API:
applied at once, kept in its topology file, refused with the loader's
words: with the real controller, real switches and real packets."""

import subprocess
import sys

import topology
from conftest import ROOT, ns
from test_hitless import wait_programmed


def nsgre(*args):
    return subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_an_endpoint_added_through_the_controller_is_reachable_and_kept_in_its_file(
        up, controller, tmp_path):
    path, api = tmp_path / "fabric.yaml", tmp_path / "api.sock"
    path.write_text(topology.seed_text())
    ctl = controller("osken_apps/nsgre_app.py",
                     extra=["--user-flags", "osken_apps/flags.py", "--nsgre-api", str(api),
                            "--nsgre-topology", str(path)])
    old = topology.load(str(path))
    emu = up(old, controller=ctl.target)
    wait_programmed(ctl, old.hosts)

    add = nsgre("endpoint", "add", "yellow", "--host", "kvm2", "--kind", "namespace",
                "--network", "net10", "--ip", "10.1.1.3/24", "--controller", str(api))
    assert add.returncode == 0, add.stderr
    assert add.stdout == (f"nsgre endpoint add yellow: done: 2 hosts, 2 networks, 5 endpoints, "
                          f"tunnel gre; kept in {path}\n")
    kept = topology.load(str(path), previous=old)
    assert kept.endpoint("yellow").host == "kvm2"
    assert kept.allocations()["macs"].items() >= old.allocations()["macs"].items()
    emu.apply(kept)                                 # the namespace itself, as a host would
    ns("yellow", "ping", "-c", "2", "-W", "1", "10.1.1.2")            # vm1 on kvm1
    assert ns("yellow", "ping", "-c", "1", "-W", "1", "10.1.2.2",     # net20: never
              check=False).returncode != 0

    bad = nsgre("endpoint", "add", "pink", "--host", "kvm9", "--network", "net10",
                "--ip", "10.1.1.4/24", "--controller", str(api))
    assert bad.returncode == 1
    assert bad.stderr.startswith("nsgre endpoint add pink: endpoints.pink.host: unknown host")
    assert "pink" not in topology.load(str(path), previous=kept).endpoints


def test_a_controller_following_the_database_programs_what_is_written_there(
        up, controller, tmp_path):
    d, api = tmp_path / "db", tmp_path / "api.sock"
    assert nsgre("db", "create", str(d)).returncode == 0
    db = f"unix:{d}/nsgre.sock"
    try:
        assert nsgre("apply", str(ROOT / "topology/seed.yaml"), "--db", db).returncode == 0
        ctl = controller("osken_apps/nsgre_app.py",
                         extra=["--user-flags", "osken_apps/flags.py", "--nsgre-api", str(api),
                                "--nsgre-db", db])
        seed = topology.load()
        emu = up(seed, controller=ctl.target)
        wait_programmed(ctl, seed.hosts)
        ns("blue", "ping", "-c", "1", "-W", "1", "10.1.1.2")
        add = nsgre("endpoint", "add", "yellow", "--host", "kvm2", "--kind", "namespace",
                    "--network", "net10", "--ip", "10.1.1.3/24", "--db", db)
        assert add.returncode == 0, add.stderr
        emu.apply(topology.parse(topology.seed_text() + "  yellow: {host: kvm2, kind: "
                                 "namespace, network: net10, ip: 10.1.1.3/24}\n", "grown.yaml",
                                 seed))
        ns("yellow", "ping", "-c", "1", "-W", "2", "10.1.1.2")      # vm1, across the tunnel
        posted = nsgre("apply", str(ROOT / "topology/seed.yaml"), "--controller", str(api))
        assert posted.returncode == 1 and "follows the topology database" in posted.stderr
    finally:
        nsgre("db", "stop", str(d))
