"""Operator tools: the ``nsgre`` command line, the API client, the
offline simulator, ``nsgre trace`` and ``nsgre draw``.  They never import
os_ken, eventlet or the OVSDB IDL (``tests/unit/test_layers.py``)."""
