"""FastHalfSpaceTrees is river's HalfSpaceTrees, score for score: same trees from the same
seed, same masses, same window pivots, same float at every step, on random and structured
streams (values exactly 0 and 1, repeats, values on the split thresholds, outside [0, 1],
NaN, missing features), whichever order score_one and learn_one come in, across pickling."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import anomaly

from watchfloor.detectors.hst import _COMPILE_MAX_LEAVES, FastHalfSpaceTrees
from watchfloor.detectors.network_flow import FlowHalfSpace
from watchfloor.detectors.testkit import make_event, network_traffic

# FlowHalfSpace's features (see FlowHalfSpace._features), deliberately not sorted.
KEYS = ("z_out", "z_in", "out", "rate", "bpp", "proto")

# (n_trees, height, window_size): the detector's defaults, its unit-test size, small and
# degenerate forests, and forests too large for the generated routing (the array walk).
PARAMS = [
    (15, 8, 250),
    (5, 6, 100),
    (3, 3, 7),
    (2, 1, 10),
    (1, 0, 5),
    (4, 10, 50),
    (1, 14, 30),
]
KINDS = ("uniform", "edges", "repeated", "clustered", "outside")


def features(rng: random.Random, kind: str, pool: list[dict[str, Any]]) -> dict[str, Any]:
    """One observation of a stream of ``kind``."""
    if kind == "uniform":
        return {k: rng.random() for k in KEYS}
    if kind == "edges":  # exact bounds (as floats and ints), the padding, the middle
        return {k: rng.choice([0.0, 1.0, 0, 1, 0.5, 0.15, 0.85, rng.random()]) for k in KEYS}
    if kind == "repeated":  # runs of identical observations from a few distinct ones
        if not pool or rng.random() < 0.05:
            pool.append({k: rng.choice([0.0, 1.0, rng.random()]) for k in KEYS})
            del pool[:-4]
        return dict(rng.choice(pool))
    if kind == "clustered":  # like the detector's: tight clusters (deep, heavy paths)
        if rng.random() < 0.02:
            return {k: rng.random() for k in KEYS}
        x = {k: min(max(rng.gauss(0.5, 0.01), 0.0), 1.0) for k in KEYS}
        x["proto"] = rng.choice([0.0, 1.0, 0.5, 0.7])
        return x
    if kind == "outside":  # beyond the limits, and NaN (river sends NaN right)
        return {k: math.nan if rng.random() < 0.02 else rng.uniform(-0.5, 1.5) for k in KEYS}
    raise ValueError(kind)


def stream(kind: str, seed: int, n: int) -> Iterator[dict[str, Any]]:
    rng, pool = random.Random(seed), []
    for _ in range(n):
        yield features(rng, kind, pool)


def pair(n_trees: int, height: int, window_size: int, seed: int,
         **kw: Any) -> tuple[FastHalfSpaceTrees, anomaly.HalfSpaceTrees]:
    return (
        FastHalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed,
                           **kw),
        anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size,
                               seed=seed, **kw),
    )


def prequential(fast: FastHalfSpaceTrees, slow: anomaly.HalfSpaceTrees,
                xs: Iterator[dict[str, Any]]) -> int:
    """Score then learn each observation (as FlowHalfSpace does); scores must be equal."""
    n = 0
    for i, x in enumerate(xs):
        a, b = fast.score_one(x), slow.score_one(x)
        assert a == b, f"step {i}: {a!r} != river's {b!r} for {x}"
        fast.learn_one(x)
        slow.learn_one(x)
        n += 1
    return n


# Several seeds per forest; one for the two large ones (river is slow to build and walk them).
CASES = [(seed, *p) for p in PARAMS for seed in ([0, 7, 42] if p[0] << p[1] < 4_096 else [42])]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("seed", "n_trees", "height", "window_size"), CASES)
def test_scores_equal_rivers_at_every_step(seed: int, n_trees: int, height: int,
                                           window_size: int, kind: str) -> None:
    fast, slow = pair(n_trees, height, window_size, seed)
    assert prequential(fast, slow, stream(kind, seed, 3_000)) == 3_000
    assert not fast._first_window  # the comparisons covered complete windows


def test_both_routings_are_covered() -> None:
    compiled, walked = FastHalfSpaceTrees(15, 8, 250), FastHalfSpaceTrees(1, 14, 30)
    for model in (compiled, walked):
        model.learn_one(dict.fromkeys(KEYS, 0.5))
        model.score_one(dict.fromkeys(KEYS, 0.5))
    assert 15 << 8 <= _COMPILE_MAX_LEAVES < 1 << 14
    assert compiled._route is not None and compiled._route.__name__ == "route"
    assert walked._route is not None and "_walker" in walked._route.__qualname__
    assert "_walker" not in compiled._route.__qualname__


@pytest.mark.parametrize(("n_trees", "height", "window_size"),
                         [(15, 8, 250), (5, 6, 100), (1, 14, 30)])
def test_values_on_the_split_thresholds_go_right_as_in_river(n_trees: int, height: int,
                                                             window_size: int) -> None:
    fast, slow = pair(n_trees, height, window_size, seed=3)
    first = dict.fromkeys(KEYS, 0.5)
    fast.learn_one(first)
    slow.learn_one(first)
    names = fast._names
    assert names == tuple(sorted(KEYS))  # river's feature order: sorted names of the first x
    on_thresholds = [(names[f], t) for feat, thr in zip(fast._feat, fast._thr, strict=True)
                     for f, t in zip(feat, thr, strict=True)]
    rng = random.Random(3)
    xs = []
    for _ in range(3_000):
        x = {k: rng.random() for k in KEYS}
        for k, t in rng.sample(on_thresholds, 3):
            x[k] = t
        xs.append(x)
    prequential(fast, slow, iter(xs))


def test_missing_and_extra_features_take_rivers_route() -> None:
    # A missing split feature sends river down the child with more mass this window.
    fast, slow = pair(5, 6, 100, seed=11)
    rng = random.Random(11)
    xs = []
    for i in range(3_000):
        x = features(rng, "clustered", [])
        if i and rng.random() < 0.2:
            for k in rng.sample(KEYS, rng.randint(1, 6)):
                del x[k]
        if rng.random() < 0.1:
            x["unknown"] = rng.random()  # not in the trees: ignored by both
        xs.append(x)
    prequential(fast, slow, iter(xs))


def test_custom_limits_are_rivers() -> None:
    limits = {"out": (0.0, 10.0), "rate": (-1.0, 1.0), "absent": (0.0, 5.0)}
    fast, slow = pair(5, 6, 100, seed=5, limits=limits)
    rng = random.Random(5)
    xs = [{**{k: rng.random() for k in KEYS}, "out": rng.uniform(0, 10),
           "rate": rng.uniform(-1, 1)} for _ in range(3_000)]
    prequential(fast, slow, iter(xs))


def test_any_order_of_calls() -> None:
    # Learn before score (river's own example), scores without learning, learning unscored.
    fast, slow = pair(5, 6, 20, seed=9)
    rng = random.Random(9)
    assert fast.score_one({"out": 0.5}) == slow.score_one({"out": 0.5}) == 0
    for i in range(3_000):
        x = features(rng, "repeated" if i % 2 else "uniform", [])
        for _ in range(rng.choice([0, 1, 1, 2])):
            assert fast.score_one(x) == slow.score_one(x)
        if rng.random() < 0.8:
            fast.learn_one(x)
            slow.learn_one(x)
        assert fast.score_one(x) == slow.score_one(x)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_trees=st.integers(1, 4),
    height=st.integers(0, 6),
    window_size=st.integers(1, 30),
    xs=st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.0, 0.5, 0.25]) | st.floats(0.0, 1.0),
            st.sampled_from([0.0, 1.0]) | st.floats(-1.0, 2.0),
            st.booleans(),
        ),
        min_size=1,
        max_size=300,
    ),
)
def test_random_streams_and_parameters(seed: int, n_trees: int, height: int,
                                       window_size: int,
                                       xs: list[tuple[float, float, bool]]) -> None:
    fast, slow = pair(n_trees, height, window_size, seed)
    for a, b, both in xs:
        x = {"a": a, "b": b} if both else {"a": a}
        assert fast.score_one(x) == slow.score_one(x)
        fast.learn_one(x)
        slow.learn_one(x)


@pytest.mark.parametrize("cut", [0, 1, 99, 100, 1_234])
def test_pickle_round_trip_continues_exactly(cut: int) -> None:
    fast, slow = pair(5, 6, 100, seed=13)
    xs = list(stream("clustered", 13, 2_500))
    prequential(fast, slow, iter(xs[:cut]))
    blob = pickle.dumps(fast)
    copy = pickle.loads(blob)
    assert isinstance(copy, FastHalfSpaceTrees) and copy._route is None
    assert pickle.dumps(copy) == blob
    for x in xs[cut:]:
        want = slow.score_one(x)
        assert fast.score_one(x) == copy.score_one(x) == want
        for model in (fast, copy, slow):
            model.learn_one(x)
    # score_one leaves the pickled state as it was (the routing and its cache are not state).
    blob = pickle.dumps(copy)
    copy.score_one(xs[0])
    assert pickle.dumps(copy) == blob


def test_state_is_bounded() -> None:
    fast = FastHalfSpaceTrees(n_trees=5, height=6, window_size=100, seed=1)
    sizes = None
    for x in stream("uniform", 1, 2_000):
        fast.score_one(x)
        fast.learn_one(x)
        now = (len(fast._mass), len(fast._table), [len(t) for t in fast._thr])
        assert sizes is None or now == sizes
        sizes = now
    assert sizes == (5 << 6, 5 << 6, [(1 << 6) - 1] * 5)


def _flows(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    flows = network_traffic(seed, n=3_000)
    t = flows[-1]["_ts"]
    flows += [make_event("network", protocol="udp", dst_port=53, dst_ip="10.0.0.53",
                         src_ip="10.1.0.14", bytes_out=rng.randint(50_000, 500_000),
                         bytes_in=rng.randint(5_000, 50_000),
                         duration_ms=rng.uniform(20_000, 120_000), _ts=t + i)
              for i in range(5)]
    return flows


@pytest.mark.parametrize("params", [{}, {"n_trees": 5, "height": 6, "window_size": 100,
                                         "warmup": 300}])
def test_flow_halfspace_scores_as_with_rivers_trees(params: dict[str, Any]) -> None:
    fast = FlowHalfSpace(**params)
    assert isinstance(fast.model, FastHalfSpaceTrees)
    # A detector restored from a checkpoint taken before the switch carries river's trees.
    old = FlowHalfSpace(**params)
    old.model = anomaly.HalfSpaceTrees(n_trees=old.n_trees, height=old.height,
                                       window_size=old.window_size, seed=old.seed)
    flows = _flows(3)
    half = len(flows) // 2
    for i, e in enumerate(flows):
        if i == half:
            old = pickle.loads(pickle.dumps(old))
            assert isinstance(old.model, anomaly.HalfSpaceTrees)
        a, b = fast.score_one(e), old.score_one(e)
        assert a == b, f"event {i}: {a} != {b}"
        fast.learn_one(e)
        old.learn_one(e)
    assert fast.score_one(flows[-1]).score > 0.9  # the tunnel flows stand out
