"""The nsgre topology model: hosts, networks and endpoints as a graph."""

from topology.loader import TopologyError, load, parse, seed_text
from topology.model import (DEFAULT_BROADCAST_LIMIT, Attachment, Endpoint, Host, Network,
                            Topology)

__all__ = ["Attachment", "DEFAULT_BROADCAST_LIMIT", "Endpoint", "Host", "Network", "Topology",
           "TopologyError", "load", "parse", "seed_text"]
