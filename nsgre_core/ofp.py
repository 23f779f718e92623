"""The OpenFlow 1.3 numbers nsgre uses, each defined once.

The pure core, the wire encoder, reply decoding, the simulator and the
OVSDB reader all take them from here (os-ken has its own copies in
``ofproto_v1_3``; ``tests/unit/test_wire.py`` holds the two equal).
"""

VERSION = 4                       # OpenFlow 1.3

# Ports (OpenFlow 1.3 numbering, 32 bits).
OFPP_MAX = 0xFFFFFF00             # highest number of a real port; reserved ports above
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD      # send to the controller as a packet-in
OFPP_ANY = 0xFFFFFFFF
#: OVSDB's Interface.ofport uses OpenFlow 1.0 numbering: real ports are
#: below 0xff00 and the bridge's LOCAL port is 65534.
OVSDB_OFPORT_MAX = 0xFF00

OFPG_ANY = 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF        # a packet-out carries its frame, not a buffer id
OFPM_ALL = 0xFFFFFFFF
OFPTT_ALL = 0xFF
OFPCML_MAX = 0xFFE5
#: An output to the controller's max_len: send the whole frame, buffer nothing.
OFPCML_NO_BUFFER = 0xFFFF

OFPVID_PRESENT = 0x1000           # vlan_vid of a tagged frame: 0x1000 | VLAN id

# Message types.
OFPT_EXPERIMENTER = 4
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_GROUP_MOD = 15
OFPT_MULTIPART_REQUEST = 18
OFPT_BARRIER_REQUEST = 20
OFPT_METER_MOD = 29
OFPT_ROLE_REQUEST = 24

# Controller roles (OFPT_ROLE_REQUEST/REPLY) and what a switch says of them.
OFPCR_ROLE_NOCHANGE, OFPCR_ROLE_EQUAL, OFPCR_ROLE_MASTER, OFPCR_ROLE_SLAVE = 0, 1, 2, 3
OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE = 1, 10          # a write from a SLAVE, refused
OFPET_ROLE_REQUEST_FAILED, OFPRRFC_STALE = 11, 0    # a claim with an old generation
#: OVS's role-status (a demotion notice): an ONF experimenter message
#: os-ken 3.1 does not decode; its body after the experimenter header.
ONF_ET_ROLE_STATUS = 1911
ROLE_STATUS = "!IB3xQ"                               # role, reason, generation

# Multipart kinds nsgre asks for.
OFPMP_AGGREGATE = 2
OFPMP_FLOW = 1
OFPMP_GROUP_DESC = 7
OFPMP_METER_CONFIG = 10
OFPMP_PORT_DESC = 13
OFPMPF_REPLY_MORE = 1

# Commands.
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
OFPGC_ADD, OFPGC_MODIFY, OFPGC_DELETE = 0, 1, 2
OFPGT_ALL = 0
OFPMC_ADD, OFPMC_MODIFY, OFPMC_DELETE = 0, 1, 2
OFPMF_PKTPS, OFPMF_BURST, OFPMF_STATS = 2, 4, 8
OFPMBT_DROP = 1

# The ONF bundle extension (OpenFlow 1.3), as OVS implements it.
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL = 2300
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
ONF_BCT_OPEN_REQUEST, ONF_BCT_COMMIT_REQUEST = 0, 4
ONF_BF_ATOMIC, ONF_BF_ORDERED = 1, 2

NX_EXPERIMENTER_ID = 0x00002320
NXAST_REG_MOVE = 6

MAX_XID = 0xFFFFFFFF
