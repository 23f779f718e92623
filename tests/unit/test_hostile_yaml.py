"""Files written to hurt the loader: alias bombs, deep nesting, bytes that
are not UTF-8, keys that are equal by value but not by text.  Each is
refused as ``FILE:LINE: path: message`` at once, never a traceback, a
RecursionError or a wait."""

import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import topology
from topology import loader

SEED = topology.seed_text()
NO_ANCHORS = "anchors and aliases are not allowed in a topology file (write the value out)"


def problems(data, source="t.yaml"):
    with pytest.raises(topology.TopologyError) as info:
        topology.parse(data, source)
    return info.value.problems


def alias_bomb(levels, width=10):
    """The issue's file: an unknown key holding ``levels`` lists of
    ``width`` aliases of the list before; expanded, width**levels items."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = ["junk:", f"  a: &a [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  {names[i]}: &{names[i]} [{', '.join(['*' + names[i - 1]] * width)}]")
    return SEED + "\n".join(lines) + "\n"


# -- anchors and aliases ----------------------------------------------------------

@pytest.fixture
def no_composer(monkeypatch):
    """Fail if anything composes a node graph or constructs a document (what
    expands aliases); count the parser events read instead."""
    def composing(*_args, **_kwargs):
        raise AssertionError("the loader composed or constructed the document")
    for name in ("get_single_node", "get_single_data", "compose_node", "construct_document"):
        monkeypatch.setattr(loader._Loader, name, composing, raising=False)
    events = []
    get_event = loader._Loader.get_event

    def counting(self):
        event = get_event(self)
        events.append(event)
        return event
    monkeypatch.setattr(loader._Loader, "get_event", counting)
    return events


@pytest.mark.parametrize("levels", [3, 7, 20])
def test_an_alias_bomb_is_refused_at_its_first_anchor_before_anything_is_expanded(
        levels, no_composer):
    text = alias_bomb(levels)
    line = SEED.count("\n") + 2
    assert problems(text, "bomb.yaml") == [f"bomb.yaml:{line}: junk.a: anchor &a: {NO_ANCHORS}"]
    # the seed's events and a few more: the parser stopped at the anchor
    assert len(no_composer) < 120
    assert not any(isinstance(e, yaml.AliasEvent) for e in no_composer)


@pytest.mark.parametrize("text,expected", [
    ("a: &a [*a]\n", f"t.yaml:1: a: anchor &a: {NO_ANCHORS}"),
    ("a: &a {b: *a}\n", f"t.yaml:1: a: anchor &a: {NO_ANCHORS}"),
    ("a: *nowhere\n", f"t.yaml:1: a: alias *nowhere: {NO_ANCHORS}"),
    ("a:\n  - 1\n  - &q 2\n", f"t.yaml:3: a[1]: anchor &q: {NO_ANCHORS}"),
    ("a:\n  &k b: 1\n", f"t.yaml:2: a: anchor &k: {NO_ANCHORS}"),
    ("base: &b {host: kvm1}\nvm: {<<: *b}\n", f"t.yaml:1: base: anchor &b: {NO_ANCHORS}"),
])
def test_anchors_and_aliases_are_refused_where_they_are(text, expected, no_composer):
    assert problems(text) == [expected]


# -- depth ------------------------------------------------------------------------

def nested_block_mappings(n):
    return "".join(" " * i + f"k{i}:\n" for i in range(n))


def nested_block_lists(n):
    return "junk:\n" + "".join("  " * i + "-\n" for i in range(n))


@pytest.mark.parametrize("text,line", [
    ("junk: " + "{a: " * 900 + "}" * 900, 1),      # a RecursionError before
    ("junk: " + "[" * 900 + "]" * 900, 1),
    ("junk: " + "{a: " * 10_000 + "}" * 10_000, 1),
    (nested_block_mappings(2000), 33),
    (nested_block_lists(2000), 33),
])
def test_deep_nesting_is_refused_at_the_line_that_goes_too_deep(text, line):
    assert problems(text) == [
        f"t.yaml:{line}: (yaml): nested more than 32 levels deep (a topology needs 5)"]


@pytest.mark.parametrize("text", ["[" * 10_000, "{" * 10_000, "{a: " * 10_000, "- " * 10_000])
def test_ten_thousand_unclosed_levels_are_refused_on_a_line(text):
    # libyaml may stop first (at 1,000 flow levels, its own bound): either way, one line
    (problem,) = problems(text)
    assert re.match(r"t\.yaml:1: \(yaml\): (syntax error|nested more than 32)", problem), problem


def test_nesting_up_to_the_bound_is_read():
    # the top mapping and 31 lists: 32 levels, read (and refused as an unknown field)
    ok = SEED + "junk: " + "[" * 31 + "]" * 31 + "\n"
    assert [p.split(": ")[1] for p in problems(ok)] == ["junk"]
    too_deep = SEED + "junk: " + "[" * 32 + "]" * 32 + "\n"
    assert problems(too_deep)[0].endswith("nested more than 32 levels deep (a topology needs 5)")


# -- bytes that are not UTF-8 -----------------------------------------------------

def test_a_file_that_is_not_utf8_is_refused_with_the_offset_of_the_first_bad_byte(tmp_path):
    data = SEED.encode().replace(b"vm2:", b"vm\xff:")
    offset = data.index(b"\xff")
    line = data.count(b"\n", 0, offset) + 1
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    expected = f"(yaml): not UTF-8: invalid byte 0xff at offset {offset}"
    assert problems(data, "bad.yaml") == [f"bad.yaml:{line}: {expected}"]
    with pytest.raises(topology.TopologyError) as info:
        topology.load(path)
    assert info.value.problems == [f"{path}:{line}: {expected}"]


@pytest.mark.parametrize("data,expected", [
    (b"a: 1\nb: caf\xc3", "t.yaml:2: (yaml): not UTF-8: invalid byte 0xc3 at offset 11"),
    ("a: 1\n".encode("utf-16"), "t.yaml:1: (yaml): not UTF-8: invalid byte 0xff at offset 0"),
    (b"a: \xed\xa0\x80\n", "t.yaml:1: (yaml): not UTF-8: invalid byte 0xed at offset 3"),
    # a str that cannot be UTF-8 (a lone surrogate, as from surrogateescape)
    ("a: 1\nb: \udcff\n", "t.yaml:2: (yaml): not UTF-8: invalid byte 0xed at offset 8"),
])
def test_invalid_utf8_in_bytes_or_str_is_refused_never_a_traceback(data, expected):
    assert problems(data) == [expected]


def test_bytes_and_text_give_the_same_topology_and_a_bom_is_fine():
    a = topology.parse(SEED, "t.yaml")
    b = topology.parse(SEED.encode(), "t.yaml")
    c = topology.parse(b"\xef\xbb\xbf" + SEED.encode(), "t.yaml")
    assert a.endpoints == b.endpoints == c.endpoints and a.networks == b.networks


# -- anything else a file may hold: a line, never a traceback ---------------------

@pytest.mark.parametrize("text,expected", [
    ("a: !!bool maybe\n", "t.yaml:1: a: cannot read 'maybe' as !!bool"),       # KeyError before
    ("a: !!timestamp x\n", "t.yaml:1: a: cannot read 'x' as !!timestamp"),     # AttributeError
    ("a:\n  0x_: 1\n", "t.yaml:2: a: cannot read '0x_' as !!int"),             # no line before
    ("a: !!int ten\n", "t.yaml:1: a: cannot read 'ten' as !!int"),
    ("a: !!set {x}\n", "t.yaml:1: a: tag !!set is not allowed"),
    ("a: !!binary aGk=\n", "t.yaml:1: a: tag !!binary is not allowed"),
    ("a: !vm x\n", "t.yaml:1: a: tag !vm is not allowed"),
    ("a: {<<: {b: 1}}\n", "t.yaml:1: a: tag !!merge is not allowed"),
    ("a: 1\n---\nb: 2\n", "t.yaml:2: (yaml): a file holds one document; found a second '---'"),
    ("a:\n  ? [x]\n  : 1\n", "t.yaml:2: a: a key must be a name, not a list or mapping"),
    ("a: b\nc: \x01\n", ("t.yaml:2: (yaml): syntax error: character #x0001: "
                         "control characters are not allowed")),
])
def test_what_a_topology_has_no_use_for_is_refused_on_its_line(text, expected):
    assert problems(text) == [expected]


# -- keys equal by value ----------------------------------------------------------

TRUNK = """\
hosts:
  kvm1: {{underlay_ip: 198.18.0.1}}
networks:
  net10: {{key: 10}}
  net20: {{key: 20}}
endpoints:
  router:
    host: kvm1
    kind: vm
    vlans:
      {first}: {{network: net10, ip: 10.1.1.254/24}}
      {second}: {{network: net20, ip: 10.1.2.254/24}}
"""
FIRST, SECOND = 11, 12          # the lines of {first} and {second}


def trunk(first, second=None):
    text = TRUNK.format(first=first, second=second)
    return text if second is not None else "\n".join(text.splitlines()[:FIRST]) + "\n"


def test_two_spellings_of_one_vlan_are_a_duplicate_naming_both_lines():
    # before: valid, and net20 silently replaced net10 on VLAN 100
    assert problems(trunk("100", "0x64")) == [
        f"t.yaml:{SECOND}: endpoints.router.vlans.0x64: duplicate of 100 (line {FIRST})"]


@pytest.mark.parametrize("text,expected", [
    ("1: x\n0b1: y\n" + SEED, "t.yaml:2: 0b1: duplicate of 1 (line 1)"),
    (SEED.replace("hosts:\n", "hosts:\n  7: {underlay_ip: 1.2.3.4}\n  +7: {underlay_ip: 1.2.3.5}\n"),
     "t.yaml:7: hosts.+7: duplicate of 7 (line 6)"),
    (SEED.replace("networks:\n", "networks:\n  10: {}\n  012: {}\n"),
     "t.yaml:10: networks.012: duplicate of 10 (line 9)"),
    (SEED.replace("endpoints:\n", "endpoints:\n  0x10: {}\n  1_6: {}\n"),
     "t.yaml:13: endpoints.1_6: duplicate of 0x10 (line 12)"),
    (SEED.replace("net20: {key: 20}", "net20: {key: 20, 'key': 21}"),
     "t.yaml:10: networks.net20.key: duplicate key"),
    # Python dicts would merge these: 1 == 1.0 == True
    (trunk("1", "1.0"), f"t.yaml:{SECOND}: endpoints.router.vlans.1.0: duplicate of 1 (line {FIRST})"),
    (trunk("1", "true"), f"t.yaml:{SECOND}: endpoints.router.vlans.true: duplicate of 1 (line {FIRST})"),
    (trunk("~", "null"), f"t.yaml:{SECOND}: endpoints.router.vlans.null: duplicate of ~ (line {FIRST})"),
])
def test_keys_equal_by_value_are_duplicates_in_every_section(text, expected):
    assert problems(text) == [expected]


def test_every_duplicate_is_reported_at_once():
    text = trunk("100", "0x64") + "tunnel: gre\ntunnel: gre\n"
    assert problems(text) == [
        f"t.yaml:{SECOND}: endpoints.router.vlans.0x64: duplicate of 100 (line {FIRST})",
        "t.yaml:14: tunnel: duplicate key"]


@pytest.mark.parametrize("key", ["'100'", '"100"', "0X64", "0o144", "0B1100100"])
def test_a_vlan_id_read_as_a_string_is_refused_as_not_a_number(key):
    value = yaml.safe_load(key) if key[0] in "'\"" else key
    assert problems(trunk(key)) == [
        (f"t.yaml:{FIRST}: endpoints.router.vlans.{value}: a guest VLAN id must be a number "
         f"1..4094, not the string '{value}'")]


def test_a_quoted_vlan_is_a_string_so_not_a_duplicate_of_the_number():
    assert problems(trunk("100", "'100'")) == [
        (f"t.yaml:{SECOND}: endpoints.router.vlans.100: a guest VLAN id must be a number "
         "1..4094, not the string '100'")]


def _underscored(draw, digits: str, start: int) -> str:
    """``digits`` with underscores after position ``start`` (where the
    resolver allows them)."""
    out = digits[:start]
    for ch in digits[start:]:
        out += "_" * draw(st.integers(0, 2)) + ch
    return out + "_" * draw(st.integers(0, 1))


@st.composite
def int_spellings(draw, v: int):
    """A plain scalar this loader's resolver reads as the int ``v`` (>= 1):
    decimal, 0x hex (digits in any case), 0-prefixed octal, 0b binary;
    underscores, leading zeros after a prefix, a leading +."""
    form = draw(st.sampled_from(["dec", "hex", "oct", "bin"]))
    zeros = "0" * draw(st.integers(0, 2))
    if form == "dec":
        body = _underscored(draw, str(v), 1)
    elif form == "hex":
        digits = "".join(c.upper() if draw(st.booleans()) else c for c in f"{v:x}")
        body = "0x" + _underscored(draw, zeros + digits, 0)
    elif form == "oct":
        body = "0" + _underscored(draw, zeros + f"{v:o}", 0)
    else:
        body = "0b" + _underscored(draw, zeros + f"{v:b}", 0)
    return draw(st.sampled_from(["", "+"])) + body


@st.composite
def two_spellings(draw):
    v = draw(st.integers(1, 4094))
    return v, draw(int_spellings(v)), draw(int_spellings(v))


@settings(max_examples=200, deadline=None)
@given(two_spellings())
def test_any_two_spellings_of_one_vlan_id_are_refused_as_duplicates_naming_both_lines(case):
    v, first, second = case
    # each spelling alone is VLAN v: the strategy writes real ints
    router = topology.parse(trunk(first), "t.yaml").endpoint("router")
    assert [a.vlan for a in router.attachments] == [v]
    message = "duplicate key" if first == second else f"duplicate of {first} (line {FIRST})"
    assert problems(trunk(first, second)) == [
        f"t.yaml:{SECOND}: endpoints.router.vlans.{second}: {message}"]


@st.composite
def string_spellings(draw, v: int):
    """(as written, the string read) for spellings of ``v`` this resolver
    reads as strings: any int spelling quoted, 0X/0B prefixes, 0o octal."""
    form = draw(st.sampled_from(["'", '"', "0X", "0B", "0o"]))
    if form in ("'", '"'):
        text = draw(int_spellings(v))
        return form + text + form, text
    digits = {"0X": f"{v:X}", "0B": f"{v:b}", "0o": f"{v:o}"}[form]
    return form + digits, form + digits


@st.composite
def spellings_with_strings(draw):
    """Two spellings of one VLAN id, at least one read as a string:
    (as written, the int or string read) each."""
    v = draw(st.integers(1, 4094))
    plain = draw(int_spellings(v)), v
    first, second = draw(string_spellings(v)), draw(st.one_of(string_spellings(v), st.just(plain)))
    return (first, second) if draw(st.booleans()) else (second, first)


@settings(max_examples=200, deadline=None)
@given(spellings_with_strings())
def test_a_spelling_read_as_a_string_is_refused_as_one_not_as_a_duplicate(case):
    (first, a), (second, b) = case
    if a == b:              # two quotings of the same text: one string key, twice
        expected = [f"t.yaml:{SECOND}: endpoints.router.vlans.{b}: duplicate key"]
    else:
        expected = [f"t.yaml:{line}: endpoints.router.vlans.{value}: a guest VLAN id must be "
                    f"a number 1..4094, not the string '{value}'"
                    for line, value in ((FIRST, a), (SECOND, b)) if isinstance(value, str)]
    assert problems(trunk(first, second)) == expected


# -- hints cannot make a file slow ------------------------------------------------

def test_hints_stop_when_a_file_would_make_them_expensive():
    n = 400
    text = ("hosts: {h1: {underlay_ip: 192.0.2.1}}\nnetworks:\n"
            + "".join(f"  net{i:04d}: {{}}\n" for i in range(n)) + "endpoints:\n"
            + "".join(f"  e{i}: {{host: h1, kind: vm, network: nat{i:04d}, ip: 10.0.0.1/24}}\n"
                      for i in range(n)))
    found = problems(text)
    hinted = [p for p in found if "did you mean" in p]
    assert len(found) == n and len(hinted) == loader._Problems.HINT_BUDGET // n
    assert re.search(r"unknown network 'nat0000' \(did you mean 'net0000'\?\)", found[0])
