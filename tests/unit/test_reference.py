"""The README's pipeline reference is generated from the declarations.

``nsgre_core.reference.markdown()`` renders it from ``nsgre_core.tables``
and ``nsgre_core.ids``; README.md must hold exactly that between its
markers, and the generator must really follow the data it reads.
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import topology
from nsgre_core import ids, pipeline, reference
from nsgre_core import tables as T

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REGENERATE = "python -m nsgre_core.reference --write README.md"


def test_readme_holds_the_generated_reference():
    held = reference.section(README.read_text())
    assert held == reference.markdown(), (
        f"README.md's pipeline reference differs from nsgre_core/tables.py and "
        f"nsgre_core/ids.py: run `{REGENERATE}`")


def test_markers_sit_directly_under_the_pipeline_heading():
    text = README.read_text()
    assert f"## The pipeline\n\n{reference.BEGIN}\n" in text
    assert reference.END in text.split("## Layout")[0]


def test_every_table_and_priority_appears():
    text = reference.markdown()
    for table in T.TABLES:
        assert f"| {table.id} | {table.name} | {table.purpose} |" in text
        assert f"**Table {table.id}, {table.name}**" in text
    for prio in T.PRIORITIES:
        assert f"| {prio.value} | `{prio.name}` | {prio.matches} | {prio.does} |" in text


def test_a_priority_value_changed_in_the_declarations_changes_the_reference(monkeypatch):
    before = reference.markdown()
    storm = next(p for p in T.PRIORITIES if p.name == "PRIO_STORM")
    changed = dataclasses.replace(storm, value=77)
    monkeypatch.setattr(T, "PRIORITIES",
                        tuple(changed if p is storm else p for p in T.PRIORITIES))
    after = reference.markdown()
    assert after != before
    assert "| 77 | `PRIO_STORM` |" in after
    assert "| 60 | `PRIO_STORM` |" not in after


def test_a_table_contract_changed_in_the_declarations_changes_may_do(monkeypatch):
    tag = dataclasses.replace(T.TAG, meters=frozenset({ids.METER_STORM}), goto=frozenset({3, 1}))
    monkeypatch.setattr(T, "TABLES", tuple(tag if t is T.TAG else t for t in T.TABLES))
    monkeypatch.setitem(T.BY_ID, tag.id, tag)
    row = next(line for line in reference.markdown().splitlines()
               if line.startswith(f"| {tag.id} | {tag.name} |"))
    assert "meter (storm control)" in row
    assert "go to 1 (arp_responder) or 3 (forward)" in row


def test_the_metadata_bit_range_follows_meta_vlan_shift(monkeypatch):
    assert "| 16..27 | `0xfff0000` | `META_VLAN_MASK` |" in reference.markdown()
    monkeypatch.setattr(ids, "META_VLAN_SHIFT", 20)
    monkeypatch.setattr(ids, "META_VLAN_MASK", 0xFFF << 20)
    text = reference.markdown()
    assert "| 20..31 | `0xfff00000` | `META_VLAN_MASK` |" in text
    assert "16..27" not in text


def test_layouts_are_computed_from_the_ids():
    text = reference.markdown()
    assert "`cookie=0x4e53000000000000/0xffff000000000000`" in text
    assert '| 63..48 | magic | `0x4e53` ("NS")' in text
    assert "| 47..40 | kind |" in text
    assert "| 39..0 | id |" in text
    for kind, name in ids.KIND_NAMES.items():
        assert f"| {kind} | `{name}` |" in text
    assert f"{ids.GROUP_FLOOD_LOCAL_BASE + 1}..{ids.GROUP_FLOOD_LOCAL_BASE + ids.VLAN_MAX}" in text
    for base, last in ids.METER_RANGES.values():
        assert f"`{base:#x}+P` | `{base + 1:#x}`..`{last:#x}`" in text
    for flag, name in ids.FLAG_NAMES.items():
        assert f"| {flag.bit_length() - 1} | `{flag:#x}` | `{name.upper()}` |" in text


def test_the_example_is_what_nsgre_pipeline_prints_without_cookies(capsys):
    from nsgre_tools import cli
    args = cli.build_parser().parse_args(["pipeline", reference.EXAMPLE_HOST])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.splitlines()
    stripped = [line.split(",", 1)[1] if line.startswith("cookie=") else line
                for line in printed]
    assert stripped == pipeline.offline_listing(topology.load(), reference.EXAMPLE_HOST,
                                                cookies=False)
    assert "```\n" + "\n".join(stripped) + "\n```" in reference.markdown()


def test_write_rewrites_only_between_the_markers(tmp_path):
    target = tmp_path / "README.md"
    target.write_text(f"# x\n\n## The pipeline\n\n{reference.BEGIN}\nstale\n"
                      f"{reference.END}\n\n## Layout\n")
    assert reference.main(["--write", str(target)]) == 0
    assert target.read_text() == (f"# x\n\n## The pipeline\n\n{reference.BEGIN}\n"
                                  f"{reference.markdown()}{reference.END}\n\n## Layout\n")


def test_write_refuses_a_file_without_markers(tmp_path, capsys):
    target = tmp_path / "README.md"
    target.write_text("# x\n\n## The pipeline\n\nhand-written\n")
    assert reference.main(["--write", str(target)]) == 1
    assert target.read_text() == "# x\n\n## The pipeline\n\nhand-written\n"
    assert "expected exactly one" in capsys.readouterr().err
    with pytest.raises(reference.MarkerError):
        reference.section(f"{reference.END}\n{reference.BEGIN}\n")


def test_the_generator_is_pure():
    code = ("import sys, nsgre_core.reference as r; r.markdown(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('os_ken', 'eventlet', 'ovs', 'osken_apps', 'nsgre_tools')); "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
