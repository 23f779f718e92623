"""The three layers stay apart: the pure core (``topology``, ``nsgre_core``)
imports nothing that talks to the world; the controller core and its
events import nothing of os-ken or eventlet; the operator tools run
without loading os-ken, eventlet or the OVSDB IDL."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORLD = {"os_ken", "eventlet", "ovs", "socket", "http", "urllib", "subprocess", "osken_apps",
         "nsgre_tools", "mininet"}
OSKEN = {"os_ken", "eventlet", "ovs"}


def imports(path: Path) -> set[str]:
    """Top-level package of every module ``path`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for package in
                                        ("nsgre_core", "topology")
                                        for p in (ROOT / package).glob("*.py")), ids=str)
def test_the_pure_core_imports_nothing_that_talks_to_the_world(path):
    assert not imports(ROOT / path) & WORLD


@pytest.mark.parametrize("name", ["controller.py", "events.py", "wire.py", "views.py"])
def test_the_controller_core_imports_nothing_of_osken_or_eventlet(name):
    assert not imports(ROOT / "osken_apps" / name) & OSKEN


LOADED = "print('loaded:', *sorted(m for m in sys.modules if m.split('.')[0] in {}))"


@pytest.mark.parametrize("argv", [["validate"], ["pipeline", "kvm1"], ["trace", "vm1", "blue"],
                                  ["draw", "-o", "{tmp}/seed.svg"], ["--help"],
                                  ["apply", "topology/seed.yaml", "--db", "unix:{tmp}/no.sock"],
                                  ["pki", "init", "{tmp}/pki"]],
                         ids=lambda a: a[0])
def test_the_operator_tools_run_without_osken_eventlet_or_the_ovsdb_idl(argv, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = (f"import sys\nfrom nsgre_tools.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            + LOADED.format(sorted(OSKEN)))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "loaded:"
