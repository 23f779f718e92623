"""nsgre's own bulk encoder writes, byte for byte, what os-ken writes for
every flow-mod, group-mod and meter-mod of a bridge, in every verb, inside
a bundle (meter-mods: outside, as OVS cannot bundle them)."""

import dataclasses
import types

import pytest
from hypothesis import given, settings

import topology
from fabrics import build, fabrics
from nsgre_core import pipeline
import osken_reference as openflow
from osken_apps import wire
from nsgre_core.reconcile import Op
from nsgre_core.pipeline import offline_ports
from os_ken.ofproto import ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

from test_trunks import TRUNKS

DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)

IPV6 = """\
hosts:
  kvm1: {underlay_ip: 198.18.0.1}
  kvm2: {underlay_ip: 198.18.0.2}
networks:
  v6: {key: 70000}
endpoints:
  a: {host: kvm1, kind: vm, network: v6, ip: "2001:db8::1/64"}
  b: {host: kvm2, kind: vm, network: v6, ip: "2001:db8::2/64"}
"""

VERBS = ("add_flow", "del_flow")
GROUP_VERBS = ("add_group", "mod_group", "del_group")
METER_VERBS = ("add_meter", "mod_meter", "del_meter")


def oskens(op, xid):
    msg = openflow.message(DP, op)
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def oskens_bundle(op, xid):
    msg = parser.ONFBundleAddMsg(DP, 7, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED,
                                 openflow.message(DP, op), [])
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def every_op(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        want = pipeline.compute(topo, host, ports[host])
        for flow in want.flows:
            for verb in VERBS:
                yield Op(verb, flow)
        for group in want.groups:
            for verb in GROUP_VERBS:
                yield Op(verb, group)
        for meter in want.meters:
            for verb in METER_VERBS:
                yield Op(verb, meter)


@pytest.mark.parametrize("text", [None, TRUNKS, IPV6], ids=["seed", "trunks", "ipv6"])
def test_every_message_of_a_fabric_is_byte_for_byte_what_osken_writes(text):
    topo = topology.parse(text) if text else topology.load()
    ops = list(every_op(topo))
    assert {op.verb for op in ops} == set(VERBS + GROUP_VERBS + METER_VERBS)
    assert any(op.item.meter for op in ops if op.verb == "add_flow")
    for xid, op in enumerate(ops, start=1000):
        assert wire.message(op, xid) == oskens(op, xid), op.item.to_ofctl()
        if not op.verb.endswith("_meter"):
            assert wire.bundle_add(7, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED, op, xid) == \
                oskens_bundle(op, xid)


@settings(max_examples=30, deadline=None)
@given(fabrics())
def test_random_fabrics_encode_as_osken_does(spec):
    topo = topology.parse(build(spec), "t.yaml")
    for op in every_op(topo):
        assert wire.message(op, 1) == oskens(op, 1), op.item.to_ofctl()


def test_flows_equal_but_for_their_cookie_are_encoded_each_with_its_own():
    topo = topology.load()
    flow = pipeline.compute(topo, "kvm1", offline_ports(topo)["kvm1"]).flows[-1]
    other = dataclasses.replace(flow, cookie=flow.cookie ^ 1)
    assert other == flow                      # the cookie is not part of a flow's identity
    for verb in VERBS:
        assert wire.message(Op(verb, other), 1) == oskens(Op(verb, other), 1)
        assert wire.message(Op(verb, flow), 1) == oskens(Op(verb, flow), 1)
