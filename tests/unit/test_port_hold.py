"""When a port's change is synced: promptly when it changes now and then,
ever less often while it flaps, promptly again once it has settled."""

from hypothesis import given, strategies as st

from osken_apps.port_hold import BASE, GATHER, MAX, PortHold


def test_a_quiet_ports_change_is_synced_after_the_gathering_delay_only():
    hold = PortHold()
    assert hold.change(10.0, {"net10"}) == 10.0 + GATHER
    assert hold.take(10.0) is None                   # not yet due
    assert hold.take(10.0 + GATHER) == {"net10"} and hold.due is None


def test_changes_before_the_sync_join_it():
    hold = PortHold()
    hold.change(10.0, {"a"})
    assert hold.change(10.001, {"b"}) is None         # a timer is pending already
    assert hold.take(10.0 + GATHER) == {"a", "b"}


def test_the_hold_doubles_while_the_port_flaps_and_stops_at_the_maximum():
    hold, now, delays = PortHold(), 0.0, []
    for _ in range(40):
        due = hold.change(now, {"n"})
        delays.append(hold.delay)
        now = due
        hold.take(now)
        now += 0.001                                 # changes again at once
    assert delays[:4] == [BASE, 2 * BASE, 4 * BASE, 8 * BASE]
    assert max(delays) == MAX and delays[-1] == MAX and hold.flapping


def test_a_port_quiet_for_twice_its_hold_is_synced_promptly_again():
    hold = PortHold(delay=MAX, last_sync=100.0)
    assert hold.change(100.0 + 2 * MAX + 0.1, {"n"}) == 100.0 + 2 * MAX + 0.1 + GATHER
    assert not hold.flapping


@given(st.lists(st.floats(0.0005, 3.0), min_size=1, max_size=300))
def test_however_it_flaps_it_is_synced_at_most_max_after_its_last_change(gaps):
    hold, now, syncs = PortHold(), 0.0, []
    for gap in gaps:
        now += gap
        while hold.due is not None and hold.due <= now:   # timers fire in time order
            syncs.append(hold.due)
            hold.take(hold.due)
        hold.change(now, {"n"})
    assert hold.due is not None and hold.due - now <= MAX + BASE
    assert all(b - a >= BASE - 1e-9 for a, b in zip(syncs, syncs[1:]))


def test_a_port_that_changes_again_soon_after_its_sync_is_held_as_flapping():
    hold = PortHold()
    hold.change(10.0, {"n"})
    hold.take(10.0 + GATHER)
    assert hold.change(10.02, {"n"}) == 10.0 + GATHER + 2 * BASE and hold.flapping
