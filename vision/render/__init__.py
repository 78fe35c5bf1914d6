"""The synthetic camera: frames of a junction approach drawn from SUMO's vehicles, with exact labels and truth.

- :mod:`vision.render.camera`: the pinhole camera on a pole or looking down;
- :mod:`vision.render.scene`: vehicles, lanes, the detector's classes;
- :mod:`vision.render.style`: domain randomisation;
- :mod:`vision.render.draw`: :func:`render_frame` (a pure function of vehicles, camera and seed);
- :mod:`vision.render.truth`: per-frame ground truth of zones and lines;
- :mod:`vision.render.sumo`: clips driven by SUMO (libsumo) on a generated junction with motorcycle-heavy demand.
"""

from vision.render.camera import Camera, look_at
from vision.render.draw import Backdrop, Frame, Truth, render_frame
from vision.render.scene import CLASSES, Lane, Scene, Vehicle, class_of, straight_scene
from vision.render.style import Style

__all__ = ["CLASSES", "Backdrop", "Camera", "Frame", "Lane", "Scene", "Style", "Truth", "Vehicle", "class_of",
           "look_at", "render_frame", "straight_scene"]
