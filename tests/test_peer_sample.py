"""``PeerSample``: bounded, never its own id, mixed by gossip, drawn with the caller's rng."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dvms.services.peer_sample import PeerSample

ids = st.lists(st.sampled_from([f"p{i}" for i in range(20)] + ["me"]), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ids, st.integers(1, 8), st.integers(0, 2**32))
def test_bounded_distinct_and_never_own(adds: list[str], capacity: int, seed: int) -> None:
    sample, rng = PeerSample("me", capacity), random.Random(seed)
    for node in adds:
        sample.add(node, rng)
        members = list(sample)
        assert len(members) == len(set(members)) == len(sample) <= capacity
        assert "me" not in sample
        assert all(m in sample for m in members)
    if adds and any(a != "me" for a in adds):
        assert adds[-1] in sample or adds[-1] == "me"


def test_a_full_sample_replaces_a_random_member() -> None:
    sample, rng = PeerSample("me", 3), random.Random(1)
    for node in ("a", "b", "c", "d"):
        sample.add(node, rng)
    assert len(sample) == 3 and "d" in sample
    sample.remove("d")
    sample.remove("zz")  # not a member: no-op
    assert len(sample) == 2 and "d" not in sample


def test_merge_fills_then_replaces_at_most_one_per_call() -> None:
    sample, rng = PeerSample("me", 3), random.Random(2)
    sample.merge(["me", "a", "b", "x"], skip={"x"}, rng=rng)
    assert sorted(sample) == ["a", "b"]
    sample.merge(["c", "d", "e"], skip=(), rng=rng)
    members = set(sample)
    # c fills the sample; d replaces one random member; the call stops there (no e)
    assert len(members) == 3 and "d" in members and "e" not in members
    assert len(members & {"a", "b", "c"}) == 2


def test_draws_on_an_empty_sample_consume_no_randomness() -> None:
    sample, rng = PeerSample("me", 3), random.Random(3)
    state = rng.getstate()
    assert sample.pick(rng) is None and sample.draw(4, rng) == ()
    assert rng.getstate() == state
    sample.add("a", rng)
    assert sample.pick(rng) == "a" and sample.draw(2, rng) == ("a", "a")
