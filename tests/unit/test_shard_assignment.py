"""Hosts shared out between shards (``nsgre apply --shards N``): even
when the count is new, and otherwise stable -- an apply that keeps the
count moves no host that stays."""

from hypothesis import given, strategies as st

from topology.rows import assign_shards

HOSTS = st.sets(st.sampled_from([f"h{i:02d}" for i in range(40)]), min_size=1)


def loads(shards: dict, count: int) -> list[int]:
    return [sum(1 for s in shards.values() if s == k) for k in range(count)]


@given(HOSTS, st.integers(1, 6))
def test_a_fresh_fabric_is_shared_out_evenly(hosts, count):
    shards = assign_shards({}, hosts, count)
    assert set(shards) == hosts and all(0 <= s < count for s in shards.values())
    assert max(loads(shards, count)) - min(loads(shards, count)) <= 1


@given(HOSTS, HOSTS, st.integers(1, 6))
def test_an_apply_keeping_the_count_moves_no_host_that_stays(before, after, count):
    old = assign_shards({}, before, count)
    new = assign_shards(old, after, count)
    assert set(new) == after and all(0 <= s < count for s in new.values())
    assert all(new[h] == old[h] for h in before & after)


@given(HOSTS, st.integers(1, 6), st.integers(1, 6))
def test_a_new_count_evens_the_shards_out_moving_as_few_hosts_as_that_takes(hosts, was, count):
    old = assign_shards({}, hosts, was)
    new = assign_shards(old, hosts, count)
    assert max(loads(new, count)) - min(loads(new, count)) <= 1
    # the fewest moves to even: the fullest shards keep up to one more
    even, extra = divmod(len(hosts), count)
    gone = sum(1 for h in hosts if old[h] >= count)
    kept = sorted(loads(old, count), reverse=True)
    fewest = gone + sum(max(0, n - even - (rank < extra)) for rank, n in enumerate(kept))
    assert sum(1 for h in hosts if new[h] != old[h]) == fewest


def test_sixty_four_hosts_of_one_shard_shared_out_between_three():
    hosts = {f"h{i:04d}" for i in range(64)}
    new = assign_shards(dict.fromkeys(hosts, 0), hosts, 3)
    assert loads(new, 3) == [22, 21, 21]
    assert all(new[f"h{i:04d}"] == 0 for i in range(22))      # the first stay
