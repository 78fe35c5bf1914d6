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


@pytest.fixture
def shipped() -> Path:
    """The shipped ONNX model (vision/models/). Its presence is test_detect's to assert; these tests need it."""
    from vision.detect import SHIPPED_ONNX

    if not SHIPPED_ONNX.is_file():
        pytest.skip(f"no shipped model at {SHIPPED_ONNX}")
    return SHIPPED_ONNX


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


def shipped_recall(images, objects) -> float:
    """The shipped model's recall on rendered frames: the labelled vehicles (at least 150 px^2) it finds with an IoU
    of 0.5 or more."""
    from vision.detect import load_detector
    from vision.track import iou_matrix

    det = load_detector()
    found = total = 0
    for img, objs in zip(images, objects):
        boxes = np.array([o.box for o in objs if o.labelled and (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) >= 150])
        if not len(boxes):
            continue
        total += len(boxes)
        d = det.detect(img)
        if len(d):
            found += int((iou_matrix(boxes, d.boxes).max(axis=1) >= 0.5).sum())
    return found / max(total, 1)


def needs_a_model_that_detects(images, objects, least: float = 0.6) -> None:
    """Counting can only match the truth with a detector that finds the vehicles: below ``least`` recall the test is
    an expected failure that says the model's recall (the model's quality is vision/models/MODEL_CARD.md's)."""
    r = shipped_recall(images, objects)
    if r < least:
        pytest.xfail(f"the shipped model finds {r:.0%} of the rendered vehicles (IoU 0.5): too few to count")


# -- the worker on the bus --------------------------------------------------------------------------------------------
class MjpegServer:
    """A camera on the network: frames served as an MJPEG stream over real HTTP (multipart/x-mixed-replace, what IP
    cameras serve). ``down`` set: open streams end and new requests are refused (HTTP 503)."""

    def __init__(self, frames: list[np.ndarray], fps: float = 10.0) -> None:
        import http.server
        import socketserver
        import threading

        import cv2

        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.down = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                import time

                if outer.down.is_set():
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                k = 0
                try:
                    while not outer.down.is_set():
                        jpg = outer.jpegs[k % len(outer.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        k += 1
                        time.sleep(1.0 / fps)
                except OSError:
                    pass

            def log_message(self, *_args):
                pass

        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/camera.mjpg"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.down.set()
        self.srv.shutdown()
        self.srv.server_close()


def rendered_frames(n: int, size=(320, 240)) -> tuple[list[np.ndarray], list]:
    """Frames of a two-lane approach with vehicles driving towards a pole camera (the renderer of vision/render),
    and each frame's truth."""
    from vision.render import Backdrop, Style, render_frame
    from vision.render.camera import look_at
    from vision.render.scene import Vehicle, straight_scene

    scene = straight_scene()
    cam = look_at((-25.0, -1.6), 30.0, 9.0, 180.0, 60.0, size[0], size[1])
    backdrop = Backdrop(scene, cam, Style.sample(11, time="day"))
    images, truth = [], []
    for k in range(n):
        vs = [Vehicle(f"c{i}", cls, -80.0 + 1.2 * k + 14.0 * i, -1.6 - 3.2 * (i % 2), 0.0, ln, wd)
              for i, (cls, ln, wd) in enumerate([("car", 4.5, 1.8), ("motorcycle", 2.0, 0.8), ("car", 4.3, 1.8),
                                                 ("truck", 7.5, 2.4)])]
        f = render_frame(vs, cam, k, backdrop=backdrop)
        images.append(f.image)
        truth.append(f.objects)
    return images, truth


def test_the_worker_on_real_sockets_loses_its_stream_reconnects_and_never_takes_the_bus_down(tmp_path, shipped):
    """``lintas camera`` (its own process) reads an HTTP camera, publishes its zone as the lane's camera detector on a
    real ZeroMQ bus, where the engine's fusion takes it as it takes the E2 stand-in's; the camera goes away (faults
    camera-lost, camera-dead: no readings meanwhile), comes back (camera-restored, readings again); the worker is
    killed and the bus carries on."""
    import json
    import signal
    import subprocess
    import time

    import zmq

    from engine.fusion import Fusion
    from engine.network import Network
    from engine.protocol import bus
    from engine.protocol import messages as m
    from tests.clirun import lintas_argv

    images, _truth = rendered_frames(30)
    cam = MjpegServer(images)
    net_file = _network(tmp_path)
    cfg = write(tmp_path, f"""
        id = "cam-NC"
        source = "{cam.url}"
        size = [320, 240]
        network = "{net_file}"
        [health]
        dead_after_s = 2.0
        reconnect_max_s = 0.5
        [[zones]]
        id = "NC"
        polygon = [[0, 100], [320, 100], [320, 240], [0, 240]]
        lane = "NC_0"
        """)
    ctx = zmq.Context()
    ep = bus.endpoints("tcp")
    fwd = bus.Forwarder(ep, ctx).start()
    sub = bus.Subscriber(ctx, ep, [m.TOPIC_DETECTORS, m.TOPIC_FAULT])
    fusion = Fusion(Network.from_json(net_file))
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(lintas_argv("camera", "--config", str(cfg), "--bus-in", ep.bus_in, "--stats", str(stats)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list = []

    def until(pred, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for _topic, msg in sub.drain():
                seen.append((time.monotonic(), msg))
                if isinstance(msg, m.DetectorBatch):
                    fusion.update(msg)
            if pred():
                return True
            assert proc.returncode is not None or proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        return False

    def batches():
        return [msg for _t, msg in seen if isinstance(msg, m.DetectorBatch)]

    def faults():
        return [msg.kind for _t, msg in seen if isinstance(msg, m.Fault)]

    try:
        assert until(lambda: len(batches()) >= 3, 60), proc.stderr
        b = batches()[-1]
        assert b.source == "cam-NC" and [r.detector for r in m.batch_readings(b)] == ["lintas_cam_NC_0"]
        assert fusion.sensors.unknown == 0 and fusion.readings >= 3
        # it sees the vehicles (the weak shipped model finds few: wait for a frame where it does, as the clip loops)
        assert until(lambda: max(r.count for b in batches() for r in m.batch_readings(b)) >= 1, 60), proc.stderr

        cam.down.set()
        assert until(lambda: "camera-dead" in faults(), 20), faults()
        assert faults().index("camera-lost") < faults().index("camera-dead")
        lost_at = next(t for t, msg in seen if isinstance(msg, m.Fault) and msg.kind == "camera-lost")
        n_lost = len(batches())
        time.sleep(0.5)
        until(lambda: False, 0.1)
        assert len([1 for t, msg in seen if isinstance(msg, m.DetectorBatch) and t > lost_at + 1.5]) == 0
        cam.down.clear()
        assert until(lambda: "camera-restored" in faults() and len(batches()) > n_lost + 1, 20), faults()

        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        health = json.loads(stats.read_text())
        # at least the loss made here (a loaded machine may stall the stream past its read timeout once more)
        assert health["lost"] >= 1 and health["reconnects"] >= 1 and health["batches"] >= 4, health

        # the worker is gone; the bus goes on
        pub = bus.Publisher(ctx, ep)
        time.sleep(0.3)
        pub.publish(m.TOPIC_DETECTORS, m.detector_batch("cabinet", 1.0, [], [], detectors=[]))
        assert until(lambda: any(isinstance(msg, m.DetectorBatch) and msg.source == "cabinet" for _t, msg in seen), 5)
        pub.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cam.close()
        sub.close()
        fwd.stop()
        ctx.destroy(linger=0)


def test_the_shipped_model_counts_a_rendered_clip_as_its_ground_truth(tmp_path, shipped):
    """A rendered clip of a SUMO junction (motorcycle-heavy, day), written as an image folder and counted by
    ``lintas vision count`` (the shipped model, the tracker and the counter): per direction the crossings of the line
    equal the renderer's ground truth (each vehicle's footprint centre on the road) within one vehicle, and so does
    the total of each class."""
    import json

    import cv2

    from tests.clirun import lintas
    from vision.render import Backdrop, Style, render_frame
    from vision.render.camera import look_at
    from vision.render.sumo import SumoClip, temp_junction
    from vision.render.truth import line_truth

    fps, seconds, lanes, w = 10.0, 10.0, 2, 3.2
    cam = look_at((-28.0, -lanes * w / 2), 32.0, 9.0, 180.0, 62.0, 336, 224)  # over the W approach, facing traffic
    a_g, b_g = np.array([-18.0, -lanes * w - 0.5, 0.0]), np.array([-18.0, 0.5, 0.0])  # across the inbound lanes
    (a, b), _ = cam.project(np.stack([a_g, b_g]))
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    objects = []
    tmp, junction = temp_junction(5, lanes=lanes, lane_width=w, veh_per_hour=2400.0)
    with tmp, SumoClip(junction, 5, step_length=0.1) as clip:
        backdrop = Backdrop(clip.scene(), cam, Style.sample(21, time="day"))
        for n, (_t, vehicles) in enumerate(clip.frames(60.0, 1.0 / fps, int(seconds * fps))):
            f = render_frame(vehicles, cam, n, backdrop=backdrop)
            cv2.imwrite(str(frames_dir / f"{n:05d}.png"), f.image)
            objects.append(f.objects)
    needs_a_model_that_detects([cv2.imread(str(p)) for p in sorted(frames_dir.iterdir())[::10]], objects[::10])
    truth = line_truth(objects, {"line": [a, b]})
    cfg = write(tmp_path, f"""
        id = "clip"
        source = "frames"
        fps = {fps}
        [[lines]]
        id = "line"
        points = [[{a[0]:.2f}, {a[1]:.2f}], [{b[0]:.2f}, {b[1]:.2f}]]
        """)
    out = tmp_path / "counts.json"
    r = lintas("vision", "count", "--config", str(cfg), "--json", str(out))
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert got["frames"] == len(objects)
    counted = got["lines"]["line"]
    want: dict[str, dict[str, int]] = {"in": {}, "out": {}}
    for (_line, d, cls), n in truth.items():
        want[d][cls] = want[d].get(cls, 0) + n
    assert sum(want["in"].values()) >= 6, want  # the clip has traffic to count
    for d in ("in", "out"):
        assert abs(sum(counted[d].values()) - sum(want[d].values())) <= 1, (counted, want)
        for cls in set(want[d]) | set(counted[d]):
            assert abs(counted[d].get(cls, 0) - want[d].get(cls, 0)) <= 1, (d, cls, counted, want)


# -- cameras in the loop ----------------------------------------------------------------------------------------------
def test_simulate_with_cameras_feeds_the_engine_what_they_count(tmp_path, shipped):
    """``lintas simulate --cameras C``: each tick every approach of junction C is rendered, detected, tracked and
    counted, and the zones' readings replace the lane-area detectors' in the batch the engine reads. The run's record
    says how far the cameras' counts were from the lane-area detectors they replaced (SUMO's own count)."""
    import json

    from tests.clirun import lintas
    from tests.onejunction import one_junction

    scn = one_junction(tmp_path / "scn", end=300.0)
    r = lintas("simulate", str(scn), "--cameras", "XX", "--end", "40")
    assert r.returncode == 2 and "--cameras: 'XX' is not a signalised junction" in r.stderr, r.stderr
    out = tmp_path / "runs.json"
    r = lintas("simulate", str(scn), "-p", "maxpressure", "--cameras", "C", "--end", "20", "--json", str(out),
               "--work-dir", str(tmp_path / "work"), "-q")
    assert r.returncode == 0, r.stderr
    (run,) = json.loads(out.read_text())["runs"]
    cams = run["cameras"]
    assert cams["junctions"] == ["C"] and cams["sites"] == 2 and cams["detectors"] == 2
    assert cams["frames"] == 2 * 20 and cams["lanes_not_seen"] == []
    if cams["count_bias"] <= -0.8 * cams["e2_mean_count"] < 0:  # the cameras see next to nothing the E2s see
        pytest.xfail(f"the shipped model sees {1 + cams['count_bias'] / cams['e2_mean_count']:.0%} of the vehicles "
                     f"in the loop's zones: too few to count ({cams})")
    assert cams["count_mae"] <= 0.5 and cams["halting_mae"] <= 0.5, cams  # per lane and tick, vehicles


def test_a_worker_slower_than_its_video_skips_frames_and_says_it_is_late(tmp_path, shipped):
    """A 500 fps video played in real time: the detector cannot keep up, so frames are skipped to stay current and
    the worker publishes camera-late (its readings go on)."""
    import cv2

    from engine.protocol import messages as m
    from vision.camera import CameraWorker
    from vision.detect import load_detector

    images, _ = rendered_frames(6)
    path = tmp_path / "fast.avi"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 500, (320, 240))
    for k in range(1000):
        wr.write(images[k % len(images)])
    wr.release()
    text = CONFIG.replace('"clip.mp4"', f'"{path}"').replace("size = [320, 240]", "size = [320, 240]\nrate = 4.0")
    cfg = load_config(write(tmp_path, text))
    sent: list = []
    w = CameraWorker(cfg, load_detector(), lambda _topic, msg: sent.append(msg))
    health = w.run()
    kinds = [x.kind for x in sent if isinstance(x, m.Fault)]
    assert health.state == "ended" and health.skipped > 0 and health.frames > 0, health
    assert kinds[:1] == ["camera-late"], kinds
    assert any(isinstance(x, m.DetectorBatch) for x in sent)
