"""Property tests (hypothesis) for the DSL's round trips, operators and exact counting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import ConfigError
from nas.searchspace import Space, get_space

from .conftest import brute_force, small_spaces

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
BUILTIN = ["resnet_like", "mobilenet_like", "vit_like", "nb201"]


@SETTINGS
@given(small_spaces())
def test_cardinality_equals_brute_force(space: Space) -> None:
    expected = brute_force(space)
    assert space.cardinality() == len(expected)
    assert sorted(json.dumps(c.flat(), sort_keys=True) for c in space.grid()) == sorted(
        json.dumps(c, sort_keys=True) for c in expected)


@SETTINGS
@given(small_spaces(), st.integers(0, 2**32 - 1))
def test_sample_mutate_crossover_are_valid(space: Space, seed: int) -> None:
    valid = {json.dumps(c, sort_keys=True) for c in brute_force(space)}
    if not valid:
        with pytest.raises(ConfigError):
            space.sample(seed)
        return
    rng = np.random.default_rng(seed)
    configs = space.sample_many(6, rng)
    for c in configs:
        assert json.dumps(c.flat(), sort_keys=True) in valid
        m = space.mutate(c, rng)
        assert json.dumps(m.flat(), sort_keys=True) in valid
        x = space.crossover(c, configs[0], rng)
        assert json.dumps(x.flat(), sort_keys=True) in valid
        for nb in space.neighbours(c):
            assert json.dumps(nb.flat(), sort_keys=True) in valid
            assert nb != c
    if len(valid) > 1:
        assert space.mutate(configs[0], rng) != configs[0]


@SETTINGS
@given(small_spaces(), st.integers(0, 2**32 - 1))
def test_encode_decode_and_serialisation_round_trips(space: Space, seed: int) -> None:
    if space.cardinality() == 0:
        return
    for c in space.sample_many(5, seed):
        assert space.decode(space.encode(c)) == c
        assert space.config(c.to_dict()) == c
        assert space.config(json.loads(c.to_json())) == c
        assert space.config(yaml.safe_load(yaml.safe_dump(c.to_dict()))) == c
        assert space.config(c.flat()) == c
    again = Space.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and again.to_dict() == space.to_dict()
    assert Space.from_dict(yaml.safe_load(yaml.safe_dump(space.to_dict()))) == space


@pytest.mark.parametrize("name", BUILTIN)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_builtin_round_trips(name: str, seed: int) -> None:
    space = get_space(name)
    rng = np.random.default_rng(seed)
    a, b = space.sample_many(2, rng)
    for c in (a, b, space.mutate(a, rng), space.crossover(a, b, rng)):
        assert space.contains(c)
        enc = space.encode(c)
        assert enc.shape == (len(space),)
        assert space.decode(enc) == c
        assert space.config(json.loads(c.to_json())) == c
        assert space.config(yaml.safe_load(yaml.safe_dump(c.to_dict()))) == c
    assert Space.from_dict(yaml.safe_load(yaml.safe_dump(space.to_dict()))) == space


@pytest.mark.parametrize("name", BUILTIN)
def test_sample_many_matches_validation_and_repair(name: str) -> None:
    space = get_space(name)
    configs = space.sample_many(300, 7)
    X = space.encode_many(configs)
    assert X.shape == (300, len(space))
    for c, x in zip(configs, X):
        assert space.contains(c.to_dict())
        assert space.repair(x) == c  # a valid vector repairs to itself
    noisy = X + np.random.default_rng(0).normal(0, 2.0, size=X.shape)
    for x in noisy:
        assert space.contains(space.repair(x))


@SETTINGS
@given(small_spaces(), st.integers(0, 2**32 - 1))
def test_repair_many_equals_row_by_row_repair(space: Space, seed: int) -> None:
    if space.cardinality() == 0:
        return
    lo, hi = space.bounds()
    X = np.random.default_rng(seed).uniform(lo - 1.5, hi + 1.5, size=(12, len(space)))
    X[0, 0] = np.nan
    assert space.repair_many(X) == [space.repair(x) for x in X]
