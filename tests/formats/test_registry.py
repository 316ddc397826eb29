"""The one registry helper: a name is registered once, unknown names and bad parameters are clear errors."""

import pytest

from formats.registry import Registry


def _registry() -> Registry:
    things = Registry("widget")

    @things.register("round")
    def round_widget(radius: float = 1.0) -> dict:
        return {"radius": radius}

    things.add("square", lambda side=1.0: {"side": side})
    return things


def test_registered_names_build_with_their_parameters():
    things = _registry()
    assert things.names() == ["round", "square"] and len(things) == 2 and "round" in things
    assert sorted(things) == ["round", "square"] and things["square"]()["side"] == 1.0
    assert things.build("round", radius=2.0) == {"radius": 2.0}


def test_registering_a_name_twice_raises():
    things = _registry()
    with pytest.raises(ValueError, match="widget 'round' is already registered"):
        things.register("round")(object)


def test_unknown_name_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown widget 'oval'; known: \['round', 'square'\]"):
        _registry().get("oval")


def test_bad_parameters_are_a_value_error():
    with pytest.raises(ValueError, match=r"widget 'round': bad parameters \['colour'\]"):
        _registry().build("round", colour="red")
