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
from nsgre_core.reconcile import Op, Verb
from nsgre_core.pipeline import offline_ports
from os_ken.ofproto import ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

from test_trunks import TRUNKS
from test_ipv6 import V6

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

VERBS = (Verb.ADD_FLOW, Verb.DEL_FLOW)
GROUP_VERBS = (Verb.ADD_GROUP, Verb.MOD_GROUP, Verb.DEL_GROUP)
METER_VERBS = (Verb.ADD_METER, Verb.MOD_METER, Verb.DEL_METER)


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


@pytest.mark.parametrize("text", [None, TRUNKS, IPV6, V6], ids=["seed", "trunks", "ipv6", "v6"])
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


def oskens_msg(msg, xid):
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def test_requests_barriers_and_bundle_controls_are_what_osken_writes():
    from nsgre_core import ids
    flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
    owned = dict(cookie=ids.COOKIE_OWNED, cookie_mask=ids.COOKIE_OWNED_MASK)
    expected = {
        wire.ports_request(5): parser.OFPPortDescStatsRequest(DP, 0),
        wire.flows_request(5): parser.OFPFlowStatsRequest(
            DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, match=parser.OFPMatch(), **owned),
        wire.flows_request(5, 3, 16): parser.OFPFlowStatsRequest(
            DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, match=parser.OFPMatch(),
            cookie=ids.COOKIE_OWNED | 3, cookie_mask=ids.COOKIE_OWNED_MASK | 15),
        wire.count_request(5): parser.OFPAggregateStatsRequest(
            DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, match=parser.OFPMatch(), **owned),
        wire.groups_request(5): parser.OFPGroupDescStatsRequest(DP, 0),
        wire.meters_request(5): parser.OFPMeterConfigStatsRequest(DP, 0, ofp.OFPM_ALL),
        wire.barrier(5): parser.OFPBarrierRequest(DP),
        wire.bundle_control(3, ofp.ONF_BCT_OPEN_REQUEST, flags, 5):
            parser.ONFBundleCtrlMsg(DP, 3, ofp.ONF_BCT_OPEN_REQUEST, flags, []),
        wire.bundle_control(3, ofp.ONF_BCT_COMMIT_REQUEST, flags, 5):
            parser.ONFBundleCtrlMsg(DP, 3, ofp.ONF_BCT_COMMIT_REQUEST, flags, []),
    }
    for ours, theirs in expected.items():
        assert ours == oskens_msg(theirs, 5), type(theirs).__name__


def test_the_ofp_constants_are_osken_s():
    from nsgre_core import ofp as ours
    for name in ("OFPP_MAX", "OFPP_IN_PORT", "OFPP_ANY", "OFPG_ANY",
                 "OFPM_ALL", "OFPTT_ALL", "OFPVID_PRESENT", "OFPT_FLOW_MOD",
                 "OFPT_GROUP_MOD", "OFPT_METER_MOD", "OFPT_MULTIPART_REQUEST",
                 "OFPT_BARRIER_REQUEST", "OFPMP_FLOW", "OFPMP_AGGREGATE", "OFPMP_PORT_DESC",
                 "OFPMP_GROUP_DESC", "OFPMP_METER_CONFIG", "OFPMPF_REPLY_MORE",
                 "OFPFC_ADD", "OFPFC_DELETE_STRICT", "OFPGC_ADD", "OFPGC_MODIFY", "OFPGC_DELETE",
                 "OFPMC_ADD", "OFPMC_MODIFY", "OFPMC_DELETE", "OFPMF_PKTPS", "OFPMF_BURST",
                 "OFPMF_STATS", "OFPMBT_DROP", "ONF_ET_BUNDLE_CONTROL",
                 "ONF_ET_BUNDLE_ADD_MESSAGE", "ONF_BCT_OPEN_REQUEST", "ONF_BCT_COMMIT_REQUEST",
                 "ONF_BF_ATOMIC", "ONF_BF_ORDERED", "OFPCML_MAX", "MAX_XID"):
        assert getattr(ours, name) == getattr(ofp, name), name
    assert ours.VERSION == ofp.OFP_VERSION


@pytest.mark.parametrize("text", [None, TRUNKS, IPV6, V6], ids=["seed", "trunks", "ipv6", "v6"])
def test_what_is_sent_decodes_back_to_the_same_steps(text):
    topo = topology.parse(text) if text else topology.load()
    ops = list(every_op(topo))
    bundled = [op for op in ops if not op.verb.meter]
    xids = list(range(100, 100 + len(bundled) + 2))
    data = wire.bundle(9, bundled, xids)
    decoded = wire.decode(data)
    assert [m.xid for m in decoded] == xids
    assert decoded[0].kind == "bundle_open" and decoded[-1].kind == "bundle_commit"
    for message, op in zip(decoded[1:-1], [op for op in ops if not op.verb.meter]):
        assert message.bundle == 9 and message.op.verb == op.verb
        if op.verb.delete:            # a delete names its item only
            assert wire.message(message.op, 1) == wire.message(op, 1)
        else:
            assert message.op == op
            assert getattr(message.op.item, "cookie", None) == getattr(op.item, "cookie", None)
    for op in ops:
        if op.verb in (Verb.ADD_METER, Verb.MOD_METER):
            assert wire.decode(wire.message(op, 1))[0].op == op


def test_the_nd_responder_fields_are_encoded_as_open_vswitch_reads_them():
    """nd_reserved and nd_options_type are Open vSwitch's Ericsson fields
    (class 0x1000), which os-ken does not know: their set_field bytes are
    held to what ``ovs-ofctl ofp-print`` decodes (OVS 3.1), and decoded
    back."""
    assert wire.action(("set_field", "nd_reserved", 0x60000000)).hex() == \
        "00190010100002046000000000000000"
    assert wire.action(("set_field", "nd_options_type", 2)).hex() == \
        "00190010100004010200000000000000"
    topo = topology.parse(V6)
    flows = pipeline.compute(topo, "h1", offline_ports(topo)["h1"]).flows
    answer = next(f for f in flows if ("set_field", "nd_options_type", 2) in f.actions)
    assert wire.decode(wire.message(Op(Verb.ADD_FLOW, answer), 1))[0].op.item == answer


def test_open_vswitch_reads_the_nd_responder_as_nsgre_means_it():
    """Where ``ovs-ofctl`` is installed: it decodes the bytes of the ND
    responder's flows into the same actions ``nsgre pipeline`` prints."""
    import shutil
    import subprocess
    if shutil.which("ovs-ofctl") is None:
        pytest.skip("ovs-ofctl not installed (the bytes are held above)")
    topo = topology.parse(V6)
    flows = pipeline.compute(topo, "h1", offline_ports(topo)["h1"]).flows
    for flow in flows:
        if flow.table not in (1, 4) or flow.priority != 100 or flow.match_dict.get(
                "eth_type") != 0x86DD:
            continue
        data = wire.message(Op(Verb.ADD_FLOW, flow), 1).hex()
        out = subprocess.run(["ovs-ofctl", "ofp-print", data], capture_output=True,
                             text=True, check=True).stdout
        acts = out.split("actions=")[1].strip()
        if flow.table == 1:
            assert "set_field:136->icmpv6_type,set_field:" in acts
            assert f"set_field:{flow.actions[5][2]}->nd_reserved" in acts
            assert "set_field:2->nd_options_type,goto_table:4" in acts
        else:
            assert acts == f"set_field:{flow.actions[0][2]}->nd_tll,IN_PORT"


@given(fabrics())
@settings(max_examples=20, deadline=None)
def test_a_flow_hashes_as_its_fields_say_once_cached_and_copies_carry_no_hash(spec):
    # The hash is kept on the flow after its first use; a flow equal to it
    # (built afresh, or decoded from a switch) must hash the same, and a
    # copy or pickle must not carry a hash made with another process's seed.
    import copy
    import pickle
    topo = topology.parse(build(spec), "t.yaml")
    ports = offline_ports(topo)
    for host in topo.hosts:
        first = pipeline.compute(topo, host, ports[host]).flows
        again = pipeline.compute(topo, host, ports[host]).flows
        assert {hash(f) for f in first} == {hash(f) for f in again}
        assert set(first) == set(again)
        for flow in first[:5]:
            fields = (flow.table, flow.priority, flow.match, flow.actions, flow.goto,
                      flow.write_metadata, flow.meter)
            assert hash(flow) == hash(fields) == hash(dataclasses.replace(flow, cookie=0))
            for clone in (copy.deepcopy(flow), pickle.loads(pickle.dumps(flow))):
                assert "_hash" not in vars(clone) and clone == flow and hash(clone) == hash(flow)
