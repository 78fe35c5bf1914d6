"""Fusion's constants: the model's settings (``FusionConfig``, the same for every map) and the health codes."""

from __future__ import annotations

from dataclasses import dataclass

NEVER = 1e6  # s: a time that never came (last seen / last crossing: -NEVER; queue since: NEVER)

# detector health, per detector (``Fusion.health``; rules in docs/fusion.md, 'Health, per detector')
# NO_DATA: never reported since the fusion's first input, for at most ``no_data_after`` s (then DEAD)
OK, STALE, STUCK, DEAD, NO_DATA = 0, 1, 2, 3, 4
HEALTH_NAMES = ("ok", "stale", "stuck", "dead", "no-data")


@dataclass(frozen=True)
class FusionConfig:
    """Model constants (not per map). Times in s, lengths in m, counts in vehicles."""

    horizon: int = 60  # profile length, 1-s bins
    stale_after: float = 2.5  # no reading for this long: stale
    dead_after: float = 30.0  # no reading for this long: dead
    no_data_after: float = 60.0  # never a reading: no-data for this long after the first input, then dead
    stuck_after: float = 120.0  # identical non-zero reading this long while the lane's other sensors see traffic
    stuck_alone_after: float = 600.0  # identical non-zero reading this long, whatever else is seen
    dead_events: float = 15.0  # vehicles the lane's other sensors saw (beyond its storage), this one none: dead
    jam_spacing: float = 7.5  # m per standing vehicle
    rate_tau: float = 90.0  # s, smoothing of the arrival rate
    blind_recall: float = 120.0  # s without green after which a lane without sensors is called whatever its model says
    free_speed_factor: float = 0.8  # vehicles approach at this fraction of the speed limit
    q_proc: float = 0.05  # process noise of the loop-count model per tick (veh^2)
    q_per_veh: float = 0.02  # extra process noise per counted vehicle
    r_camera: float = 1.0  # measurement noise of the camera count (veh^2)
    r_empty: float = 0.25  # ... of 'both loops empty and silent: nothing between them'
    r_full: float = 1.0  # ... of 'advance loop covered: the section is full'
    sl_empty_after: float = 3.0  # s of an empty, silent stop-line loop after which no queue stands at it
    up_quiet: float = 6.0  # s of an empty, silent advance loop after which no queue stands beyond it
    sat_headway: float = 2.0  # s per vehicle leaving a queue on green (departure model, no departure sensor)
