"""The camera's config, sources and worker (vision/camera.py, vision/sources.py): bad input named by file and key,
the worker on real ZeroMQ sockets with a stream that goes away and comes back, and the counts of the shipped model
on a rendered clip."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from vision.camera import CameraConfigError, camera_detector_id, load_config

CONFIG = """
id = "cam1"
source = "clip.mp4"
size = [320, 240]
[[zones]]
id = "q0"
polygon = [[10, 10], [150, 10], [150, 230], [10, 230]]
lane = "NC_0"
[[lines]]
id = "stop"
points = [[10, 200], [310, 200]]
"""


def write(tmp_path: Path, text: str, name: str = "cam.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_a_good_config(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG))
    assert cfg.id == "cam1" and cfg.size == (320, 240) and cfg.published == {"q0": "lintas_cam_NC_0"}
    assert [ln.names for ln in cfg.lines] == [("in", "out")]


def test_camera_detector_ids_match_the_compilers():
    from simulation.sumo.detectors import detector_id

    for lane in ("NC_0", ":J1_0_0", "a b/c", "x#1[2]"):
        assert camera_detector_id(lane) == detector_id("cam", lane)


@pytest.mark.parametrize(("edit", "needle"), [
    (("source = \"clip.mp4\"\n", "source = \"clip.mp4\"\nbogus = 1\n"), "bogus: unknown key"),
    (("size = [320, 240]", "size = [320]"), "size: expected [width, height]"),
    (("[150, 10], [150, 230]", "[350, 10], [150, 230]"), "zones[0].polygon ('q0'): point (350, 10) is outside the "
                                                         "320x240 image"),
    (("[310, 200]]", "[310, 260]]"), "lines[0].points ('stop'): point (310, 260) is outside"),
    (("points = [[10, 200], [310, 200]]", "points = [[10, 200]]"), "lines[0].points: expected 2 points"),
    (("points = [[10, 200], [310, 200]]", "points = [[10, 200], [10, 200]]"), "the two points of 'stop' are the same"),
    (("polygon = [[10, 10], [150, 10], [150, 230], [10, 230]]", "polygon = [[10, 10], [150, 10]]"),
     "zones[0].polygon: expected at least 3 points"),
    (("polygon = [[10, 10], [150, 10], [150, 230], [10, 230]]", "polygon = \"square\""),
     "zones[0].polygon: expected a list of [x, y] pixel points"),
    (("id = \"stop\"", "id = \"q0\""), "lines[0].id: 'q0' is used twice"),
    (("source = \"clip.mp4\"\n", ""), "source: missing"),
    (("source = \"clip.mp4\"\n", "source = \"clip.mp4\"\nrate = 0\n"), "rate: readings per second must be in"),
    (("source = \"clip.mp4\"\n", "source = \"clip.mp4\"\nanchor = \"top\"\n"), "anchor: 'top' is not one of"),
    (("[[lines]]", "[[lines]]\nnames = [\"in\", \"in\"]"), "lines[0].names: expected two different"),
    (("source = \"clip.mp4\"\n", "source = \"clip.mp4\"\nmodel = \"nowhere.onnx\"\n"), "model:"),
    (("[[zones]]", "[[zones]\n"), "not valid TOML"),
])
def test_bad_configs_name_the_file_and_the_key(tmp_path, edit, needle):
    old, new = edit
    text = textwrap.dedent(CONFIG)
    assert old in text
    p = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(CameraConfigError) as err:
        load_config(p)
    assert str(err.value).startswith(str(p)) and needle in str(err.value), str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(CameraConfigError, match="no such camera config file"):
        load_config(tmp_path / "none.toml")


def _network(tmp_path: Path) -> Path:
    """A compiled network of the one-junction scenario (lanes NC_0 and WC_0, each with its camera detector)."""
    from simulation.sumo.netcompile import compile_for_run
    from simulation.sumo.scenario import load_scenario
    from tests.onejunction import one_junction

    net, _det = compile_for_run(load_scenario(one_junction(tmp_path / "scn")), tmp_path / "compiled")
    out = tmp_path / "network.json"
    net.to_json(out)
    return out


def test_lanes_checked_against_the_network(tmp_path):
    net = _network(tmp_path)
    cfg = load_config(write(tmp_path, CONFIG), network=net)
    assert cfg.published == {"q0": "lintas_cam_NC_0"}
    p = write(tmp_path, CONFIG.replace('lane = "NC_0"', 'lane = "XX_0"'), "bad.toml")
    with pytest.raises(CameraConfigError, match=r"bad\.toml: zones\[0\]\.lane: 'XX_0' is not a controlled lane of "
                                                r"the network"):
        load_config(p, network=net)
    p = write(tmp_path, CONFIG.replace("[[lines]]", "[[lines]]\nlane = \"CE_0\""), "bad2.toml")
    with pytest.raises(CameraConfigError, match=r"lines\[0\]\.lane: 'CE_0' is not a controlled lane"):
        load_config(p, network=net)
    with pytest.raises(CameraConfigError, match=r"network: .*nowhere\.json: no such file"):
        load_config(write(tmp_path, CONFIG), network=tmp_path / "nowhere.json")


# -- sources --------------------------------------------------------------------------------------------------------
def _video(path: Path, frames: int = 5, size=(320, 240)) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened()
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    w.release()
    return path


def test_sources_name_a_missing_or_corrupt_video_and_a_wrong_frame_size(tmp_path):
    from vision.sources import SourceError, open_source

    with pytest.raises(SourceError, match=r"nowhere\.avi: no such video file"):
        open_source("nowhere.avi", base=tmp_path)
    (tmp_path / "bad.avi").write_bytes(b"\x00garbage" * 200)
    with pytest.raises(SourceError, match=r"bad\.avi: (not a video OpenCV can read|no frame decodes)"):
        open_source(tmp_path / "bad.avi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty: no images"):
        open_source(tmp_path / "empty")
    src = open_source(_video(tmp_path / "ok.avi", size=(200, 100)))
    f = src.read()
    assert f.image.shape == (100, 200, 3) and src.fps == 10.0
    cfg = load_config(write(tmp_path, CONFIG))
    with pytest.raises(CameraConfigError, match=r"cam\.toml: size: the frames of .* are 200x100 pixels, the config "
                                                r"says 320x240"):
        cfg.check_frame(f.image, "ok.avi")


def test_commands_name_a_bad_config(tmp_path):
    from tests.clirun import lintas

    p = write(tmp_path, CONFIG.replace("[150, 10]", "[999, 10]"))
    for args in (("vision", "count", "--config", str(p)), ("camera", "--config", str(p))):
        r = lintas(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines()[-1] == (f"lintas: error: {p}: zones[0].polygon ('q0'): point (999, 10) is "
                                                     f"outside the 320x240 image")
