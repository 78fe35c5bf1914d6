"""The synthetic camera: labels match the vehicles drawn, frames are a pure function of their inputs, ground truth of
zones and lines, SUMO-driven clips, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vision.render import CLASSES, Backdrop, Camera, Style, Vehicle, look_at, render_frame, straight_scene
from vision.render.truth import LineTruth, line_truth, zone_truth


def clean_style(seed: int = 3, time: str = "day") -> Style:
    """A style without anything that blurs a vehicle's edges or lights the road around it."""
    return dataclasses.replace(Style.sample(seed, time), noise=0.0, blur=0.0, motion_blur=0, jpeg=0, rain=0.0,
                               shadows=0.0, headlights=False, occluders=0, vignette=0.0, downscale=1.0,
                               colour_jitter=0.0)


TOP = Camera(-20.0, 0.0, 30.0, 90.0, 90.0, 60.0, 256, 256)  # straight down; image x = world x, image y = -world y
POLE = look_at((-25.0, 0.0), 25.0, 8.0, 0.0, 60.0, 320, 224)


def vehicles() -> list[Vehicle]:
    return [Vehicle("car1", "car", -20.0, -1.6, 0.0, 4.5, 1.8),
            Vehicle("moto1", "motorcycle", -12.0, -4.8, 10.0, 2.0, 0.8),
            Vehicle("moto2", "motorcycle", -27.0, -4.6, -5.0, 1.9, 0.75),
            Vehicle("bus1", "bus", -32.0, 1.6, 180.0, 12.0, 2.5),
            Vehicle("truck1", "truck", -8.0, 4.8, 180.0, 8.0, 2.4)]


def _changed_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 0
    ys, xs = np.nonzero(diff)
    if len(xs) == 0:
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("camera", [TOP, POLE], ids=["top-down", "pole"])
def test_labels_are_exactly_the_vehicles_drawn(camera):
    """Each labelled box is where its vehicle's pixels are (rendering without that vehicle changes exactly that
    box, to a pixel), with its class; a vehicle out of the image has no label."""
    style = clean_style()
    scene = straight_scene()
    backdrop = Backdrop(scene, camera, style)
    vs = [*vehicles(), Vehicle("far", "car", 400.0, 0.0, 0.0, 4.5, 1.8)]
    full = render_frame(vs, camera, 7, backdrop=backdrop)
    ids = {o.id for o in full.objects}
    assert "far" not in ids
    labelled = [o for o in full.objects if o.labelled]
    assert len(labelled) >= 3
    rows = full.labels()
    assert len(rows) == len(labelled) == full.yolo_text().count("\n")
    for o in labelled:
        without = render_frame([v for v in vs if v.id != o.id], camera, 7, backdrop=backdrop)
        box = _changed_box(full.image, without.image)
        assert box is not None, o.id
        x0, y0, x1, y1 = o.box
        # the pixels it changed lie in its box (occluders in front may hide part of it, never add to it)
        assert box[0] >= x0 - 1.5 and box[1] >= y0 - 1.5 and box[2] <= x1 + 1.5 and box[3] <= y1 + 1.5, (o.id, box,
                                                                                                           o.box)
        if o.visible > 0.99:  # nothing in front of it: the box is tight
            assert abs(box[0] - x0) <= 1.5 and abs(box[2] - x1) <= 1.5, (o.id, box, o.box)
            assert abs(box[1] - y0) <= 1.5 and abs(box[3] - y1) <= 1.5, (o.id, box, o.box)
    classes = sorted(int(r[0]) for r in rows)
    assert classes == sorted(CLASSES.index(o.cls) for o in labelled)
    h, w = full.image.shape[:2]
    assert np.all((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1))
    assert (w, h) == camera.size


def test_top_down_geometry_is_the_pinhole():
    """Straight down from 30 m with a 60 degree field: a car's footprint lands where the pinhole says."""
    style = clean_style()
    car = Vehicle("c", "car", -20.0, -3.0, 0.0, 4.0, 2.0)
    frame = render_frame([car], TOP, 1, scene=straight_scene(), style=style)
    (o,) = frame.objects
    f = 128.0 / np.tan(np.radians(30.0))
    # the roof is closer to the camera, so the box is at least the footprint's projection
    assert o.box[0] <= 128 + f * (-2.0) / 30.0 + 0.5 and o.box[2] >= 128 + f * 2.0 / 30.0 - 0.5
    assert o.ground == pytest.approx((128.0, 128.0 + f * 3.0 / 30.0), abs=1e-6)
    assert o.labelled and o.cls == "car"


def test_occluded_vehicle_is_not_labelled():
    """A motorcycle right behind a bus, seen from a low pole camera, is drawn over by the bus: no label."""
    cam = look_at((-20.0, -1.6), 20.0, 4.0, 0.0, 50.0, 240, 160)
    bus = Vehicle("bus", "bus", -22.0, -1.6, 0.0, 12.0, 2.5)
    moto = Vehicle("moto", "motorcycle", -12.0, -1.6, 0.0, 2.0, 0.8)
    frame = render_frame([bus, moto], cam, 2, scene=straight_scene(), style=clean_style())
    by_id = {o.id: o for o in frame.objects}
    assert by_id["bus"].labelled
    assert not by_id["moto"].labelled and by_id["moto"].visible < 0.35


SMALL = look_at((-25.0, 0.0), 25.0, 8.0, 0.0, 60.0, 192, 128)


def test_a_frame_is_a_pure_function_of_its_inputs():
    a = render_frame(vehicles(), SMALL, 11)
    b = render_frame(vehicles(), SMALL, 11)
    c = render_frame(vehicles(), SMALL, 12)
    assert np.array_equal(a.image, b.image) and a.objects == b.objects
    assert not np.array_equal(a.image, c.image)


def test_styles_cover_day_dusk_night_and_weather():
    styles = [Style.sample(s) for s in range(200)]
    assert {s.time for s in styles} == {"day", "dusk", "night"}
    assert any(s.rain > 0 for s in styles) and any(s.rain == 0 for s in styles)
    assert any(s.headlights for s in styles) and any(s.jpeg for s in styles) and any(s.occluders for s in styles)
    night = render_frame(vehicles(), SMALL, 5, style=Style.sample(5, "night"))
    day = render_frame(vehicles(), SMALL, 5, style=Style.sample(5, "day"))
    assert night.image.mean() < day.image.mean()


def test_zone_and_line_truth():
    """A motorcycle driving east across a line drawn top to bottom counts once, in the direction the sign of
    (b - a) x v gives; the zone holds it while it is in the polygon."""
    cam = TOP
    line = {"L": [(128.0, 0.0), (128.0, 256.0)]}  # x = -20 m; a->b points down the image
    zone = {"Z": [(0.0, 0.0), (128.0, 0.0), (128.0, 256.0), (0.0, 256.0)]}  # west of the line
    style = clean_style()
    backdrop = Backdrop(straight_scene(), cam, style)
    frames = []
    for k, x in enumerate(np.arange(-26.0, -14.0, 1.0)):
        f = render_frame([Vehicle("m", "motorcycle", float(x), -1.6, 0.0, 2.0, 0.8)], cam, k, backdrop=backdrop)
        frames.append(f.objects)
        inside = zone_truth(f.objects, zone)["Z"]
        assert (len(inside) == 1) == (x < -20.0)
    counts = line_truth(frames, line)
    # moving right (+x) across a line pointing down (+y): (b - a) x v = (0, 1) x (1, 0) = -1 -> "out"
    assert counts == {("L", "out", "motorcycle"): 1}
    # back and forth across the line: still once per vehicle and line
    lt = LineTruth(line)
    for fr in frames + frames[::-1] + frames:
        lt.step(fr)
    assert sum(lt.counts.values()) == 1
    # a move that passes beyond the segment's end is no crossing
    short = {"S": [(128.0, 0.0), (128.0, 80.0)]}
    assert line_truth(frames, short) == {}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="class must be one of"):
        Vehicle("x", "tram", 0, 0, 0, 4, 2)
    with pytest.raises(ValueError, match="length and width"):
        Vehicle("x", "car", 0, 0, 0, 0, 2)
    with pytest.raises(ValueError, match="pitch"):
        Camera(0, 0, 10, 0, 120)
    with pytest.raises(ValueError, match="height"):
        Camera(0, 0, 0.1, 0, 30)
    with pytest.raises(TypeError, match="Vehicle"):
        render_frame([("car", 1, 2)], POLE, 1)
    with pytest.raises(ValueError, match="zone 'Z'"):
        zone_truth([], {"Z": [(0, 0), (1, 1)]})
    with pytest.raises(ValueError, match="line 'L'"):
        LineTruth({"L": [(0, 0), (0, 0)]})
    with pytest.raises(ValueError, match="time must be one of"):
        Style.sample(1, "noon")


def test_sumo_clip_is_motorcycle_heavy_and_renders():
    """A generated junction in libsumo: motorcycles are most of the vehicles, SUMO's vehicles become labelled boxes
    on the approach."""
    from vision.render.sumo import SumoClip, random_camera, temp_junction

    tmp, junction = temp_junction(5, lanes=2, veh_per_hour=2400)
    with tmp, SumoClip(junction, 5, step_length=0.5) as clip:
        scene = clip.scene()
        assert any(lane.stop for lane in scene.lanes) and scene.junctions
        cam = random_camera(np.random.default_rng(1), 2, size=(320, 256))
        style = Style.sample(9)
        backdrop = Backdrop(scene, cam, style)
        seen: dict[str, str] = {}
        labelled = 0
        for t, vs in clip.frames(40.0, 5.0, 6):
            frame = render_frame(vs, cam, int(t), backdrop=backdrop)
            labelled += sum(o.labelled for o in frame.objects)
            seen.update({v.id: v.cls for v in vs})
    classes = list(seen.values())
    assert classes.count("motorcycle") > len(classes) / 3
    assert classes.count("motorcycle") >= max(classes.count(c) for c in ("car", "bus", "truck"))
    assert labelled > 0
