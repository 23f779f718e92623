"""Every flow and group the pipeline computes survives the trip to OpenFlow
bytes and back unchanged, so what a switch reports can be compared with what
nsgre wants record by record (and a restarted controller sends nothing)."""

import types

import pytest

import topology
from nsgre_core import ids, pipeline, reconcile
import osken_reference as reference
from osken_apps import openflow
from os_ken.ofproto import ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser
from nsgre_core.pipeline import offline_ports

from test_trunks import TRUNKS
from test_ipv6 import V6

# os-ken builds messages for a datapath; only its protocol version matters here.
DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


def on_the_wire(msg):
    msg.serialize()
    return type(msg).parser(DP, ofp.OFP_VERSION, msg.msg_type, msg.msg_len, 0, bytes(msg.buf))


def as_reported(flow):
    """The FlowMod that installs ``flow``, as a switch would report it."""
    mod = on_the_wire(reference.flow_mod(DP, flow, ofp.OFPFC_ADD))
    stats = parser.OFPFlowStats(table_id=mod.table_id, priority=mod.priority, cookie=mod.cookie,
                                match=mod.match, instructions=mod.instructions)
    return openflow.flow_from_stats(stats)


@pytest.mark.parametrize("text", [None, TRUNKS, V6], ids=["seed", "trunks", "v6"])
def test_every_computed_flow_and_group_comes_back_from_the_wire_unchanged(text):
    topo = topology.load() if text is None else topology.parse(text, "t.yaml")
    ports = offline_ports(topo)
    for host in topo.hosts:
        want = pipeline.compute(topo, host, ports[host])
        flows = [as_reported(f) for f in want.flows]
        assert flows == list(want.flows)
        assert [f.cookie for f in flows] == [f.cookie for f in want.flows]
        groups = []
        for g in want.groups:
            mod = reference.group_mod(DP, g, ofp.OFPGC_ADD)
            buckets = []
            for bucket in mod.buckets:
                buf = bytearray()
                bucket.serialize(buf, 0)
                buckets.append(parser.OFPBucket.parser(bytes(buf), 0))
            desc = parser.OFPGroupDescStats(type_=mod.type, group_id=mod.group_id,
                                            buckets=buckets)
            groups.append(openflow.group_from_desc(desc))
        assert groups == list(want.groups)
        assert reconcile.plan(flows, groups, want.flows, want.groups) == []


def test_only_nsgre_flood_group_ids_count_as_ours():
    assert ids.owned_group(10) and ids.owned_group(4096 + 4094)
    assert not ids.owned_group(0) and not ids.owned_group(4095)
    assert not ids.owned_group(9000)
