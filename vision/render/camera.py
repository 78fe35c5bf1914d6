"""A fixed road camera: a pinhole on a pole (or looking straight down), and where the world lands in its image.

World coordinates are SUMO's: metres, x east, y north, z up. A :class:`Camera` stands at ``(x, y, height)`` and looks
along ``yaw`` (degrees, counter-clockwise from east, as in mathematics; not SUMO's compass angle), tilted ``pitch``
degrees below the horizon (90: straight down, a top-down view), with a horizontal field of view ``fov``. Image
coordinates are pixels, x right and y down, as OpenCV and YOLO have them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

NEAR = 0.3  # metres: points closer to the camera plane than this are behind it, as far as drawing goes


@dataclass(frozen=True)
class Camera:
    x: float
    y: float
    height: float
    yaw: float
    pitch: float
    fov: float = 60.0
    width: int = 480
    height_px: int = 320
    roll: float = 0.0

    def __post_init__(self) -> None:
        if self.height <= 0.5:
            raise ValueError(f"camera height must be above 0.5 m, got {self.height}")
        if not 0.0 < self.pitch <= 90.0:
            raise ValueError(f"camera pitch must be in (0, 90] degrees below the horizon, got {self.pitch}")
        if not 10.0 <= self.fov <= 150.0:
            raise ValueError(f"camera fov must be in [10, 150] degrees, got {self.fov}")
        if self.width < 16 or self.height_px < 16:
            raise ValueError(f"camera image must be at least 16x16 px, got {self.width}x{self.height_px}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height_px

    @cached_property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.height], dtype=np.float64)

    @cached_property
    def rotation(self) -> np.ndarray:
        """World -> camera rotation (rows: the camera's right, down and forward axes in world coordinates)."""
        yaw, pitch, roll = (math.radians(a) for a in (self.yaw, self.pitch, self.roll))
        fwd = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
        right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
        down = np.cross(fwd, right)
        if roll:
            c, s = math.cos(roll), math.sin(roll)
            right, down = c * right + s * down, -s * right + c * down
        return np.stack([right, down, fwd])

    @cached_property
    def focal(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.fov) / 2.0)

    @cached_property
    def intrinsics(self) -> np.ndarray:
        f = self.focal
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height_px / 2.0], [0.0, 0.0, 1.0]])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points [..., 3] in camera coordinates [..., 3] (z: depth along the view)."""
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [..., 3] -> (pixels [..., 2], depth [...]). Points behind the camera get NaN pixels."""
        pc = self.to_camera(points)
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.where(z > NEAR, z, np.nan)
            f = self.focal
            u = f * pc[..., 0] / zz + self.width / 2.0
            v = f * pc[..., 1] / zz + self.height_px / 2.0
        return np.stack([u, v], axis=-1), z

    def ground_homography(self) -> np.ndarray:
        """The 3x3 homography taking ground points (x, y, 1) (z = 0) to homogeneous pixels."""
        r = self.rotation
        t = -r @ self.position
        return self.intrinsics @ np.column_stack([r[:, 0], r[:, 1], t])

    def pixel_rays(self) -> np.ndarray:
        """The world direction of every pixel's ray [h, w, 3] (not normalised)."""
        f = self.focal
        u = (np.arange(self.width) + 0.5 - self.width / 2.0) / f
        v = (np.arange(self.height_px) + 0.5 - self.height_px / 2.0) / f
        uu, vv = np.meshgrid(u, v)
        rays = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
        return rays @ self.rotation  # camera -> world: R^T applied to row vectors

    def ground_distance(self, max_dist: float) -> np.ndarray:
        """Per pixel, the distance (m) along its ray to the ground, or inf where it misses the ground within
        ``max_dist`` (sky, or ground beyond the haze)."""
        rays = self.pixel_rays()
        dz = rays[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(dz < -1e-6, -self.height / dz, np.inf)
        dist = t * np.linalg.norm(rays, axis=-1)
        return np.where(dist <= max_dist, dist, np.inf)

    def ground_footprint(self, max_dist: float) -> tuple[float, float, float, float]:
        """The bounding box (xmin, ymin, xmax, ymax, metres) of the ground this camera sees within ``max_dist``."""
        d = self.ground_distance(max_dist)
        rays = self.pixel_rays()
        ok = np.isfinite(d)
        if not ok.any():
            return self.x - 1.0, self.y - 1.0, self.x + 1.0, self.y + 1.0
        dirs = rays[ok] / np.linalg.norm(rays[ok], axis=-1, keepdims=True)
        pts = self.position + dirs * d[ok][:, None]
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def look_at(target: tuple[float, float], distance: float, height: float, towards: float, fov: float = 60.0,
            width: int = 480, height_px: int = 320, roll: float = 0.0, lateral: float = 0.0) -> Camera:
    """A pole camera ``distance`` metres from ``target`` (ground), on the side opposite to ``towards`` (the yaw it
    looks along, degrees), shifted ``lateral`` metres to the right of that line, aimed at the target.
    ``distance`` 0 is a camera straight above the target (top-down)."""
    yaw = math.radians(towards)
    cx = target[0] - distance * math.cos(yaw) + lateral * math.sin(yaw)
    cy = target[1] - distance * math.sin(yaw) - lateral * math.cos(yaw)
    dx, dy = target[0] - cx, target[1] - cy
    horiz = math.hypot(dx, dy)
    if horiz < 1e-6:
        return Camera(cx, cy, height, towards, 90.0, fov, width, height_px, roll)
    pitch = math.degrees(math.atan2(height, horiz))
    return Camera(cx, cy, height, math.degrees(math.atan2(dy, dx)), pitch, fov, width, height_px, roll)
