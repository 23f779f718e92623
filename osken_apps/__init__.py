"""nsgre's OpenFlow side: the pure pipeline and the os-ken plumbing around it."""

import warnings

# os-ken and the ovs poller import eventlet, which warns on every import.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
