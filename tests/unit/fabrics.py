"""Random valid topologies for property tests (hypothesis strategies)."""

from hypothesis import strategies as st


@st.composite
def fabrics(draw):
    """A random valid topology as a plain dict."""
    tunnel = draw(st.sampled_from(["gre", "vxlan", "geneve"]))
    n_hosts = draw(st.integers(1, 5))
    hosts = {f"h{i}": {"underlay_ip": f"198.18.0.{i + 1}"} for i in range(n_hosts)}
    n_nets = draw(st.integers(1, 25))
    keys = draw(st.lists(st.one_of(st.none(), st.integers(1, 9000)), min_size=n_nets,
                         max_size=n_nets))
    networks, used = {}, set()
    for i, key in enumerate(keys):
        networks[f"n{i}"] = {} if key is None or key in used else {"key": key}
        used.add(key)
    endpoints = {}
    for i in range(draw(st.integers(0, 30))):
        net = f"n{draw(st.integers(0, n_nets - 1))}"
        endpoints[f"e{i}"] = {"host": f"h{draw(st.integers(0, n_hosts - 1))}", "kind": "vm",
                              "network": net, "ip": f"10.0.{i // 250}.{i % 250 + 1}/16"}
    return {"tunnel": tunnel, "hosts": hosts, "networks": networks, "endpoints": endpoints}
