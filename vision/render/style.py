"""Domain randomisation: how one camera's clip looks (light, weather, road paint, lens, sensor, compression).

A :class:`Style` is drawn once per clip from a seed (a camera does not turn from day to night between frames); the
per-frame parts (sensor noise, rain streaks) are drawn from each frame's own seed. Vehicles keep their look across
a clip: it is drawn from the style's seed and the vehicle's id.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

TIMES = ("day", "dusk", "night")


@dataclass(frozen=True)
class Style:
    seed: int
    time: str  # day | dusk | night
    sun_azimuth: float  # radians, counter-clockwise from east
    sun_elevation: float  # radians
    ambient: float  # light on faces turned away from the sun (0..1)
    tint: tuple[float, float, float]  # BGR multipliers (white balance, dusk's orange)
    exposure: float
    gamma: float
    sky: tuple[tuple[float, float, float], tuple[float, float, float]]  # BGR at the zenith and at the horizon
    haze: float  # metres: half the contrast is lost over this distance
    max_dist: float  # metres: ground beyond this is haze and skyline
    asphalt: float  # grey level of the road (0..1)
    asphalt_tone: tuple[float, float, float]
    asphalt_noise: float
    ground: tuple[float, float, float]  # BGR beside the road (grass, dirt, concrete)
    marking_wear: float  # 0: fresh paint, 1: almost gone
    median_yellow: bool
    crosswalk: bool
    arrows: bool
    rain: float  # 0: dry; up to 1: heavy rain
    wet: bool
    shadows: float  # how dark cast shadows are (0..1)
    headlights: bool
    streetlights: int
    blur: float  # Gaussian blur sigma (output px)
    motion_blur: int  # kernel length (output px; 0 none)
    motion_angle: float
    noise: float  # sensor noise sigma (0..255 scale)
    jpeg: int  # JPEG quality; 0: no compression
    downscale: float  # the sensor's true resolution as a fraction of the image (1: full)
    vignette: float
    occluders: int  # poles, foliage, signs in front of the lens
    colour_jitter: float

    @classmethod
    def sample(cls, seed: int, time: str | None = None) -> Style:
        """A random style; ``time`` forces day, dusk or night."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5157]))
        if time is None:
            time = str(rng.choice(TIMES, p=[0.55, 0.2, 0.25]))
        if time not in TIMES:
            raise ValueError(f"style time must be one of {', '.join(TIMES)}, got {time!r}")
        rain = float(rng.choice([0.0, rng.uniform(0.2, 1.0)], p=[0.75, 0.25]))
        if time == "day":
            elev = rng.uniform(0.35, 1.4)
            ambient = rng.uniform(0.45, 0.7)
            tint = tuple(rng.uniform(0.9, 1.1, 3))
            exposure = rng.uniform(0.85, 1.2)
            sky = ((rng.uniform(0.75, 0.95), rng.uniform(0.55, 0.75), rng.uniform(0.35, 0.55)),
                   (rng.uniform(0.8, 0.95),) * 3)
        elif time == "dusk":
            elev = rng.uniform(0.05, 0.3)
            ambient = rng.uniform(0.3, 0.5)
            tint = (rng.uniform(0.6, 0.8), rng.uniform(0.75, 0.9), rng.uniform(1.0, 1.15))
            exposure = rng.uniform(0.5, 0.8)
            sky = ((rng.uniform(0.4, 0.6), rng.uniform(0.25, 0.4), rng.uniform(0.25, 0.4)),
                   (rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.75), rng.uniform(0.8, 0.95)))
        else:
            elev = 0.5
            ambient = rng.uniform(0.1, 0.22)
            tint = (rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0), rng.uniform(0.9, 1.2))
            exposure = rng.uniform(0.8, 1.3)
            sky = ((rng.uniform(0.05, 0.12), rng.uniform(0.03, 0.08), rng.uniform(0.02, 0.06)),
                   (rng.uniform(0.12, 0.25), rng.uniform(0.12, 0.22), rng.uniform(0.15, 0.3)))
        if rain:
            ambient = min(0.85, ambient + 0.15)
            exposure *= rng.uniform(0.75, 0.95)
        grounds = [(0.25, 0.45, 0.3), (0.35, 0.45, 0.5), (0.6, 0.62, 0.62), (0.3, 0.38, 0.42), (0.45, 0.5, 0.5)]
        ground = tuple(float(c) * rng.uniform(0.8, 1.2) for c in grounds[int(rng.integers(len(grounds)))])
        grey = rng.uniform(0.22, 0.55)
        return cls(
            seed=int(seed), time=time,
            sun_azimuth=float(rng.uniform(0, 2 * math.pi)), sun_elevation=float(elev), ambient=float(ambient),
            tint=tuple(float(t) for t in tint), exposure=float(exposure), gamma=float(rng.uniform(0.8, 1.25)),
            sky=tuple(tuple(float(c) for c in s) for s in sky), haze=float(rng.uniform(60, 400)),
            max_dist=float(rng.uniform(120, 220)), asphalt=float(grey),
            asphalt_tone=tuple(float(t) for t in rng.uniform(0.92, 1.08, 3)),
            asphalt_noise=float(rng.uniform(0.02, 0.1)), ground=ground,
            marking_wear=float(rng.uniform(0.0, 0.8)), median_yellow=bool(rng.random() < 0.4),
            crosswalk=bool(rng.random() < 0.5), arrows=bool(rng.random() < 0.5),
            rain=rain, wet=bool(rain > 0 or rng.random() < 0.1),
            shadows=float(0.0 if time == "night" or rain > 0.4 else rng.uniform(0.25, 0.6)),
            headlights=bool(time == "night" or (time == "dusk" and rng.random() < 0.8) or rain > 0.5),
            streetlights=int(rng.integers(2, 8)) if time != "day" else 0,
            blur=float(rng.choice([0.0, rng.uniform(0.3, 1.3)], p=[0.4, 0.6])),
            motion_blur=int(rng.choice([0, int(rng.integers(3, 8))], p=[0.8, 0.2])),
            motion_angle=float(rng.uniform(0, 180)),
            noise=float(rng.uniform(1, 6) if time == "day" else rng.uniform(3, 12)),
            jpeg=int(rng.choice([0, int(rng.integers(20, 95))], p=[0.2, 0.8])),
            downscale=float(rng.choice([1.0, rng.uniform(0.5, 0.9)], p=[0.6, 0.4])),
            vignette=float(rng.uniform(0, 0.35)), occluders=int(rng.choice([0, 1, 2, 3], p=[0.4, 0.3, 0.2, 0.1])),
            colour_jitter=float(rng.uniform(0.0, 0.15)),
        )


def vehicle_rng(style_seed: int, vehicle_id: str) -> np.random.Generator:
    """The random source of one vehicle's look in one clip (the same every frame)."""
    return np.random.default_rng([int(style_seed) & 0xFFFFFFFF, zlib.crc32(vehicle_id.encode())])
