"""The nsgre topology model: hosts, networks and endpoints as a graph."""

from topology.loader import TopologyError, did_you_mean, load, parse, seed_text
from topology.model import (DEFAULT_BROADCAST_LIMIT, Attachment, Endpoint, Host, Network,
                            Topology)

__all__ = ["Attachment", "DEFAULT_BROADCAST_LIMIT", "Endpoint", "Host", "Network", "Topology",
           "TopologyError", "did_you_mean", "load", "parse", "seed_text"]
