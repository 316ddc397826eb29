"""Light, sky and exposure specs (no bpy): sun geometry, daylight sampling, metering, clipping."""

import dataclasses
import math

import numpy as np
import pytest

from render import lights
from render.lights import EnvironmentSpec, LightError, LightSpec, metered_exposure
from render.spec import rotation_matrix


@pytest.mark.parametrize("elevation, rotation", [(0.1, 0.0), (0.7, 1.3), (1.4, -2.0), (0.3, 4.0)])
def test_sun_lamp_points_away_from_the_sun(elevation, rotation):
    d = lights.sun_direction(elevation, rotation)
    assert np.linalg.norm(d) == pytest.approx(1.0) and d[2] == pytest.approx(math.sin(elevation))
    # a Blender lamp shines along its local -z: local +z must be the direction to the sun
    np.testing.assert_allclose(rotation_matrix(lights.sun_rotation_euler(d)) @ [0, 0, 1], d, atol=1e-5)
    np.testing.assert_allclose(lights.sun_direction(elevation, 0.0)[:2], [math.cos(elevation), 0.0], atol=1e-12)


@pytest.mark.parametrize("sky", lights.DAYLIGHT_SKIES)
def test_daylight_is_seeded_and_consistent(sky):
    a = lights.daylight(np.random.default_rng(4), sky=sky)
    assert a == lights.daylight(np.random.default_rng(4), sky=sky)
    env, sun = a
    lights.validate_environment(env)
    lights.validate_light(sun)
    assert env.kind == sky and sun.kind == "sun" and sun.energy > 0
    toward = rotation_matrix(sun.rotation) @ [0, 0, 1]
    np.testing.assert_allclose(toward, lights.sun_direction(env.sun_elevation, env.sun_rotation), atol=1e-4)
    with pytest.raises(LightError, match="sky must be one of"):
        lights.daylight(np.random.default_rng(0), sky="cloudy")


def test_ceiling_lights_stay_inside_the_room():
    ls = lights.ceiling_lights(np.random.default_rng(2), (0.0, 0.0), (4.0, 6.0), 2.7, n=3)
    assert len(ls) == 3
    for light in ls:
        assert light.kind == "area" and 0 < light.location[0] < 4 and 0 < light.location[1] < 6
        assert light.location[2] == pytest.approx(2.68)


def test_meter_maps_the_log_average_to_middle_grey():
    rng = np.random.default_rng(0)
    img = np.exp(rng.normal(0, 0.5, (32, 32, 1))).repeat(3, -1) * 0.01  # log-average 0.01
    ev = metered_exposure(img)
    assert ev == pytest.approx(math.log2(0.18 / 0.01), abs=0.05)
    # 10x brighter scene: 3.32 stops less exposure
    assert metered_exposure(img * 10) == pytest.approx(ev - math.log2(10), abs=1e-6)
    # a bright lamp in 2% of the image caps the exposure so its highlights stay below white
    lamp = img.copy()
    lamp[:1, :20] = 1e4
    assert metered_exposure(lamp) < ev - 5
    assert metered_exposure(np.zeros((4, 4, 3))) == 0.0
    assert metered_exposure(np.full((4, 4, 3), 1e-12)) == lights.EV_RANGE[1]


def test_clipped_fractions():
    img = np.full((10, 10, 3), 128, np.uint8)
    img[0, :5] = (255, 10, 10)  # 5 blown (one channel at 255)
    img[1, :3] = 0  # 3 crushed
    img[2, :2] = (0, 0, 40)  # not crushed: one channel has signal
    f = lights.clipped_fractions(img)
    assert f == {"clipped_white": 0.05, "clipped_black": 0.03, "clipped": pytest.approx(0.08)}


@pytest.mark.parametrize("change, match", [
    (dict(kind="fog"), r"environment\.kind must be one of"),
    (dict(kind="hdri"), r"environment\.image must name"),
    (dict(image="sky.hdr"), r"environment\.image is only allowed"),
    (dict(turbidity=20.0), r"environment\.turbidity"),
    (dict(aerosol_density=-1.0), r"environment\.aerosol_density"),
])
def test_environment_validation_names_the_field(change, match):
    with pytest.raises(LightError, match=match):
        lights.validate_environment(dataclasses.replace(EnvironmentSpec(), **change))
    with pytest.raises(LightError, match=r"light\.energy"):
        lights.validate_light(LightSpec(energy=-1.0))


def test_relight_by_family():
    from render.materials import MaterialSpec
    from render.spec import CameraSpec, ObjectSpec, SceneSpec, validate

    cam = CameraSpec.from_focal_mm(32, 32, 30.0, (1.0, 1.0, 1.5), (3.0, 3.0, 1.0))
    room = [ObjectSpec("box", (4.0, 5.0, 0.1), (2.0, 2.5, -0.05), semantic_class="floor"),
            ObjectSpec("box", (4.0, 5.0, 0.1), (2.0, 2.5, 2.75), semantic_class="ceiling"),
            ObjectSpec("lamp", (0.3, 0.3, 1.5), (3.5, 4.5, 0.75), semantic_class="lamp", material=MaterialSpec("plastic"))]
    spec = SceneSpec(cam, room, family="indoor")
    dark = lights.relight(spec, np.random.default_rng(0))
    validate(dark)
    assert dark.environment.kind == "uniform" and {x.kind for x in dark.lights} == {"area"}
    for x in dark.lights:
        assert 0 < x.location[0] < 4 and 0 < x.location[1] < 5 and x.location[2] == pytest.approx(2.68)
    assert dark.objects[2].material.emission > 0 and spec.objects[2].material.emission == 0  # a copy
    spec.objects.append(ObjectSpec("box", (1.0, 0.1, 1.0), (2.0, 5.0, 1.5), semantic_class="window"))
    lit = lights.relight(spec, np.random.default_rng(0))
    assert lit.environment.kind == "hosek_wilkie" and [x.kind for x in lit.lights].count("sun") == 1
    outdoor = lights.relight(SceneSpec(cam, [], family="outdoor"), np.random.default_rng(0), sky="nishita")
    assert outdoor.environment.kind == "nishita" and [x.kind for x in outdoor.lights] == ["sun"]
