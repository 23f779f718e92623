"""nsgre's pure core: the model's networks as OpenFlow records.

Tables, flow/group/meter records, the one place ids are laid out
(``ids``), the per-table flow builders (``pipeline``) and reconcile.
Nothing here imports os_ken, eventlet, ovs or sockets: the runtime
(``osken_apps``) and the operator tools (``nsgre_tools``) both build on it.
"""
