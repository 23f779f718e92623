# nsgre: `make demo` runs the seed emulation's check, `make test` the tests.
# Both install what is missing first (apt packages, a virtualenv in .venv).

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_PACKAGES := openvswitch-switch mininet iproute2 ethtool iputils-ping tcpdump graphviz iperf3 \
                fonts-liberation2 \
                qemu-system-x86 busybox-static libvirt-daemon libvirt-clients \
                libvirt-daemon-driver-qemu gcc libc6-dev

.PHONY: setup apt guest-image root demo test unit integration down clean bench

setup: apt $(STAMP) guest-image

# Install only the Debian packages that are not installed yet, without
# recommends (never libvirt-daemon-system: it pulls systemd in as init).
apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The QEMU guests' kernel and initramfs (--guests qemu|libvirt), built from
# Debian packages into /var/cache/nsgre/guest; returns at once when current.
guest-image: apt $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then $(PY) -m mininet_scenarios.guest_image; \
	else echo "guest image: not built (needs root)"; fi

root:
	@[ "$$(id -u)" = 0 ] || { echo "this target needs root: it creates namespaces and runs Open vSwitch"; exit 1; }

demo: root setup
	$(PY) -m mininet_scenarios --check

test: root setup
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest tests/unit

integration: root setup
	$(PY) -m pytest tests/integration

# Not tests: each bench/ script measures side by side and rewrites its section of BENCHMARKS.md.
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: root setup $(VENV)/.bench
	$(PY) bench/bench_flows.py
	$(PY) bench/bench_change.py
	$(PY) bench/bench_restart.py
	$(PY) bench/bench_dataplane.py
	$(PY) bench/bench_topology.py
	$(PY) bench/bench_live_change.py
	$(PY) bench/bench_port_up.py
	$(PY) bench/bench_guest_boot.py
	$(PY) bench/bench_objects.py
	$(PY) bench/bench_failover.py
	$(PY) bench/bench_shards.py
	$(PY) bench/bench_attacks.py
	$(PY) bench/bench_programming.py --curve

down: setup
	$(PY) -m mininet_scenarios --down

clean: down
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
