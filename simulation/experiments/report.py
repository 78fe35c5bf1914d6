"""Comparison reports of signal-control runs: Markdown, HTML, two PNG figures, a rich table.

A *run* is a dict with the keys ``policy``, ``seed``, ``delay_s``, ``trip_duration_s``,
``waiting_s``, ``queue_veh``, ``throughput_veh``, ``teleports``, ``collisions``, ``vehicles`` and
optionally ``delay_by_arrival`` (list of ``[bin start, mean delay]``) and ``queue_by_junction``
(dict junction -> mean halting vehicles), ``faults``, ``locks`` and ``lock_events`` (the lock episodes of
``simulation.sumo.locks``), and the pedestrians' and bicycles' figures (``persons``, ``ped_delay_s``,
``ped_wait_max_s``, ``bicycles``, ``bike_delay_s``: their columns appear only when a run has a value);
``RunMetrics.to_dict()`` plus policy and seed is one.
Missing or ``None``/NaN values (e.g. no queue samples) are left out of the means.

All numbers in the tables come from :func:`summarize` (mean and sample standard deviation over
seeds per policy, delay change against the baseline), shared by the Markdown, HTML and rich
renderings.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulation.sumo.locks import LOCK_S
from simulation.sumo.tools import sumo_version

__all__ = [
    "COLUMNS",
    "PED_BIKE_COLUMNS",
    "TROUBLE_KEYS",
    "PolicySummary",
    "Summary",
    "columns_of",
    "format_table",
    "problems",
    "resolve_baseline",
    "scenario_notes",
    "summarize",
    "table_markdown",
    "table_rows",
    "write_report",
]

#: (run key, column title, decimals) of the aggregated columns, in table order.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("delay_s", "Delay (s)", 1),
    ("trip_duration_s", "Trip duration (s)", 1),
    ("waiting_s", "Waiting (s)", 1),
    ("stops_per_veh", "Stops (per veh)", 2),
    ("queue_veh", "Queue (veh)", 2),
    ("throughput_veh", "Throughput (veh)", 1),
    ("teleports", "Teleports", 1),
    ("collisions", "Collisions", 1),
    ("never_inserted", "Never inserted", 1),
    ("faults", "Faults", 1),
    ("locks", "Locks", 1),
)

#: columns shown right after the delay only when a run has a value (a scenario with persons, with bicycles)
PED_BIKE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("ped_delay_s", "Pedestrian delay (s)", 1),
    ("ped_wait_max_s", "Pedestrian max wait (s)", 1),
    ("bike_delay_s", "Bicycle delay (s)", 1),
)

#: counts beside "Vehicles" in the per-run table (and the facts), when their delay column is shown
_PED_BIKE_COUNTS = (("persons", "Persons", "ped_delay_s"), ("persons_unfinished", "Still walking", "ped_delay_s"),
                    ("bicycles", "Bicycles", "bike_delay_s"))

#: columns where anything above zero is a problem the reader must see (red in the HTML, listed under Problems)
TROUBLE_KEYS = ("teleports", "collisions", "never_inserted", "faults", "locks")

_FALLBACK_BASELINES = ("sumo-static", "fixed")
_COUNT_KEYS = frozenset({"throughput_veh", "teleports", "collisions", "never_inserted", "faults", "locks"})
_DASH = "–"


# --------------------------------------------------------------------------------------------
# aggregation (the one place numbers are computed)
# --------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    m = sum(values) / n
    if n < 2:
        return m, math.nan
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var)


@dataclass
class PolicySummary:
    """Aggregates of one policy over its seeds."""

    policy: str
    seeds: list[Any]
    mean: dict[str, float]
    std: dict[str, float]
    count: dict[str, int]  # number of runs with a value, per column
    vehicles: float
    delay_change_pct: float | None = None  # vs the baseline; negative = less delay

    @property
    def n_runs(self) -> int:
        return len(self.seeds)


@dataclass
class Summary:
    baseline: str | None
    policies: list[PolicySummary] = field(default_factory=list)
    columns: list[tuple[str, str, int]] = field(default_factory=lambda: list(COLUMNS))  # the ones shown

    def by_policy(self) -> dict[str, PolicySummary]:
        return {p.policy: p for p in self.policies}


def resolve_baseline(policies: Sequence[str], baseline_policy: str | None = "sumo-static") -> str | None:
    """The policy the delay change is measured against.

    ``baseline_policy`` when it is among ``policies``; otherwise the net's own program:
    ``sumo-static`` when present, else ``fixed`` when present, else ``None``.
    """
    present = set(policies)
    for cand in (baseline_policy, *_FALLBACK_BASELINES):
        if cand is not None and cand in present:
            return cand
    return None


def columns_of(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """:data:`COLUMNS`, with each of :data:`PED_BIKE_COLUMNS` that a run has a value of right after the delay."""
    extra = [c for c in PED_BIKE_COLUMNS if any(_num(r.get(c[0])) is not None for r in runs)]
    return [COLUMNS[0], *extra, *COLUMNS[1:]]


def summarize(runs: Sequence[Mapping[str, Any]], baseline_policy: str | None = "sumo-static") -> Summary:
    """Per policy (in order of first appearance): mean ± sample std over seeds of every column shown
    (:func:`columns_of`)."""
    order: list[str] = []
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        pol = str(run["policy"])
        if pol not in grouped:
            grouped[pol] = []
            order.append(pol)
        grouped[pol].append(run)

    baseline = resolve_baseline(order, baseline_policy)
    summary = Summary(baseline=baseline, columns=columns_of(runs))
    for pol in order:
        group = grouped[pol]
        mean: dict[str, float] = {}
        std: dict[str, float] = {}
        count: dict[str, int] = {}
        for key, _title, _dec in summary.columns:
            vals = [v for v in (_num(r.get(key)) for r in group) if v is not None]
            mean[key], std[key] = _mean_std(vals)
            count[key] = len(vals)
        veh = [v for v in (_num(r.get("vehicles")) for r in group) if v is not None]
        summary.policies.append(PolicySummary(
            policy=pol,
            seeds=[r.get("seed") for r in group],
            mean=mean,
            std=std,
            count=count,
            vehicles=_mean_std(veh)[0],
        ))
    if baseline is not None:
        base = summary.by_policy()[baseline].mean["delay_s"]
        for p in summary.policies:
            d = p.mean["delay_s"]
            if not (math.isnan(base) or math.isnan(d) or base == 0):
                p.delay_change_pct = (d - base) / base * 100.0
    return summary


# --------------------------------------------------------------------------------------------
# table rendering
# --------------------------------------------------------------------------------------------


def _fmt_mean_std(m: float, s: float, dec: int) -> str:
    if math.isnan(m):
        return _DASH
    if math.isnan(s):
        return f"{m:.{dec}f}"
    return f"{m:.{dec}f} ± {s:.{dec}f}"


def _fmt_pct(p: PolicySummary, baseline: str | None) -> str:
    if baseline is None or p.delay_change_pct is None:
        return _DASH
    if p.policy == baseline:
        return "baseline"
    return f"{p.delay_change_pct:+.1f}%"


def table_rows(
    runs: Sequence[Mapping[str, Any]] | Summary, baseline_policy: str | None = "sumo-static"
) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the comparison table (shared by every rendering)."""
    summary = runs if isinstance(runs, Summary) else summarize(runs, baseline_policy)
    header = ["Policy", "Seeds", *(title for _k, title, _d in summary.columns),
              f"Delay vs {summary.baseline}" if summary.baseline else "Delay vs baseline"]
    rows = []
    for p in summary.policies:
        cells = [p.policy, str(p.n_runs)]
        cells += [_fmt_mean_std(p.mean[k], p.std[k], d) for k, _t, d in summary.columns]
        cells.append(_fmt_pct(p, summary.baseline))
        rows.append(cells)
    return header, rows


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |",
             "|" + "|".join("---" if i < right_from else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def table_markdown(runs: Sequence[Mapping[str, Any]], baseline_policy: str | None = "sumo-static") -> str:
    """The comparison table as GitHub Markdown (one row per policy, mean ± sample std over seeds)."""
    header, rows = table_rows(runs, baseline_policy)
    return _markdown_table(header, rows)


def format_table(
    runs: Sequence[Mapping[str, Any]], baseline_policy: str | None = "sumo-static", *, title: str | None = None
):
    """The comparison table as a :class:`rich.table.Table` (same numbers as :func:`table_markdown`)."""
    from rich.table import Table

    header, rows = table_rows(runs, baseline_policy)
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def _clock(t: float, _pos: Any = None) -> str:
    t = round(float(t))
    return f"{t // 3600:d}:{(t % 3600) // 60:02d}"


def _short(label: str, width: int = 18) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _delay_series(runs: Sequence[Mapping[str, Any]], order: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """Per policy: (bin start, mean over the seeds that have that bin)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for pol in order:
        acc: dict[float, list[float]] = {}
        for r in runs:
            if str(r["policy"]) != pol:
                continue
            for item in r.get("delay_by_arrival") or ():
                t, v = _num(item[0]), _num(item[1])
                if t is not None and v is not None:
                    acc.setdefault(t, []).append(v)
        if acc:
            out[pol] = [(t, sum(vs) / len(vs)) for t, vs in sorted(acc.items())]
    return out


def _queue_by_junction(runs: Sequence[Mapping[str, Any]],
                       order: Sequence[str]) -> tuple[list[str], dict[str, dict[str, float]]]:
    junctions: list[str] = []
    per: dict[str, dict[str, float]] = {}
    for pol in order:
        acc: dict[str, list[float]] = {}
        for r in runs:
            if str(r["policy"]) != pol:
                continue
            for j, v in (r.get("queue_by_junction") or {}).items():
                v = _num(v)
                if v is None:
                    continue
                if j not in junctions:
                    junctions.append(j)
                acc.setdefault(j, []).append(v)
        if acc:
            per[pol] = {j: sum(vs) / len(vs) for j, vs in acc.items()}
    return junctions, per


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_delay_over_time(runs, order, scenario: str, path: Path) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    series = _delay_series(runs, order)
    fig = _new_figure(8.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    if series:
        for pol, pts in series.items():
            ax.plot([t for t, _ in pts], [v for _, v in pts], marker="o", markersize=3, linewidth=1.6, label=pol)
        ts = [t for pts in series.values() for t, _ in pts]
        span = max(ts) - min(ts)
        step = next((s for s in (300, 900, 1800, 3600, 7200, 14400) if span / s <= 8), 21600)
        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.xaxis.set_major_formatter(FuncFormatter(_clock))
        ax.set_xlabel("arrival time (start of 5-min bin, h:mm)")
        ax.set_ylabel("mean delay (s)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    else:
        _no_data(ax, "no delay_by_arrival in the runs")
    ax.set_title(f"{scenario}: delay by arrival time (mean over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def _plot_queue_per_junction(runs, order, scenario: str, path: Path) -> None:
    junctions, per = _queue_by_junction(runs, order)
    width = min(16.0, max(6.0, 0.55 * len(junctions) * max(1, len(per)) + 2.5))
    fig = _new_figure(width, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    if per and junctions:
        pols = [p for p in order if p in per]
        bar_w = 0.8 / len(pols)
        xs = list(range(len(junctions)))
        for k, pol in enumerate(pols):
            vals = [per[pol].get(j, math.nan) for j in junctions]
            ax.bar([x - 0.4 + bar_w * (k + 0.5) for x in xs], vals, width=bar_w, label=pol)
        ax.set_xticks(xs)
        ax.set_xticklabels([_short(j, 40 if len(junctions) <= 4 else 18) for j in junctions],
                           rotation=30 if len(junctions) > 3 else 0, ha="right" if len(junctions) > 3 else "center",
                           fontsize=8)
        ax.set_ylabel("mean halting vehicles on approaches")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    else:
        _no_data(ax, "no queue_by_junction in the runs")
    ax.set_title(f"{scenario}: queue per junction (mean over steps and seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


# --------------------------------------------------------------------------------------------
# report files
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
td.bad, li.bad { color: #a40000; font-weight: 600; } td.bad { background: #fde2e2; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _above_zero(cell: str) -> bool:
    try:
        return float(cell.split(" ", 1)[0]) > 0
    except ValueError:
        return False


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; a problem column's cell above zero is red."""
    trouble = {title for key, title, _d in COLUMNS if key in TROUBLE_KEYS}
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>",
           "<tbody>"]
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            cls = "" if i == 0 else ("num bad" if header[i] in trouble and _above_zero(c) else "num")
            cells.append(f'<td class="{cls}">{html.escape(c)}</td>' if cls else f"<td>{html.escape(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def scenario_notes(compiled: Any, gui_only: Sequence[str] = ()) -> list[str]:
    """What the comparison's reader must know about the scenario (from the CompileReport of
    ``simulation.sumo.netcompile``): programs SUMO actuates, WAUT switching, the intervals Lintas lengthened to
    its minimums or cut to its maximum green; and the options only sumo-gui knows, left out of the runs."""
    out: list[str] = []
    if gui_only:
        out.append(f"Options only sumo-gui knows are left out of the runs: {', '.join(gui_only)}.")
    if compiled is None:
        return out
    if compiled.skipped_tls:
        from simulation.sumo.netcompile import skipped_summary

        out.append(f"Lights Lintas leaves to SUMO's own program: {skipped_summary(compiled.skipped_tls)}.")
    types: dict[str, list[str]] = {}
    for tls, kind in sorted(compiled.program_type.items()):
        types.setdefault(kind or "static", []).append(tls)
    moving = {k: v for k, v in types.items() if k != "static"}
    if moving:
        which = "; ".join(f"{len(v)} {k} ({', '.join(v[:5])}{', ...' if len(v) > 5 else ''})"
                          for k, v in moving.items())
        out.append(f"Programs that are not static: {which}. sumo-static runs SUMO's own actuation there; Lintas' "
                   f"fixed runs their durations as a fixed-time plan, so fixed and sumo-static differ there by "
                   f"design: compare fixed with sumo-static only where the programs are static.")
    if compiled.waut:
        out.append(f"WAUT program switching is not supported: {', '.join(sorted(compiled.waut))} are compiled "
                   f"with the program in force at the scenario's begin; the SUMO baselines switch programs, "
                   f"Lintas' policies do not.")
    if compiled.lengthened:
        kinds: dict[str, int] = {}
        for c in compiled.lengthened:
            kinds[c["what"]] = kinds.get(c["what"], 0) + 1
        out.append(f"{len(compiled.lengthened)} intervals of the scenario's own programs are shorter than Lintas' "
                   f"minimums ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): Lintas shows them "
                   f"longer, never shorter (listed below).")
    if compiled.shortened:
        out.append(f"{len(compiled.shortened)} greens of the scenario's programs are longer than Lintas' maximum "
                   f"green: Lintas ends them at the maximum (listed below).")
    return out


def _changes_table(compiled: Any, limit: int = 200) -> tuple[list[str], list[list[str]]]:
    header = ["Junction", "Interval", "Green phase", "Program phases", "Links", "Net (s)", "Shown (s)"]
    rows = []
    for c in [*compiled.lengthened, *compiled.shortened][:limit]:
        phase = f"{c['phase']} -> {c['to_phase']}" if "to_phase" in c else str(c["phase"])
        rows.append([str(c["junction"]), str(c["what"]), phase, ", ".join(map(str, c.get("program_phases", []))),
                     ", ".join(map(str, c.get("links", []))) or "all", f"{c['net']:g}", f"{c['shown']:g}"])
    return header, rows


def problems(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per run and problem: a junction that latched a fault (and was left all red), collisions,
    teleports, vehicles never inserted, and one line per lock episode (simulation/sumo/locks.py). Empty when every
    run was clean."""
    out: list[str] = []
    for r in runs:
        who = f"{r.get('policy')} seed {r.get('seed')}"
        for jid, t in sorted((r.get("fault_junctions") or {}).items(), key=lambda kv: (kv[1], kv[0])):
            out.append(f"{who}: junction {jid} latched a fault at {float(t):g} s and showed all red from then on")
        n = _num(r.get("faults"))
        if n and not r.get("fault_junctions"):
            out.append(f"{who}: {n:.0f} latched faults")
        if _num(r.get("failsafe_s")):
            out.append(f"{who}: {float(r['failsafe_s']):.0f} junction-seconds all red after a fault")
        for key, what in (("collisions", "collisions"), ("teleports", "teleports"),
                          ("never_inserted", "vehicles never inserted")):
            n = _num(r.get(key))
            if n:
                out.append(f"{who}: {n:.0f} {what}")
        events = r.get("lock_events") or []
        for e in events:
            line = (f"{who}: lane {e['lane']} of junction {e['junction']} locked from {float(e['since']):g} s "
                    f"(no vehicle left for {LOCK_S:g} s with {float(e['green_s']):g} s of green)")
            if e.get("until") is not None:
                line += f"; a vehicle left again at {float(e['until']):g} s"
            out.append(line)
        n = _num(r.get("locks"))
        if n and not events:
            out.append(f"{who}: {n:.0f} locks")
    return out


def _per_run_rows(runs: Sequence[Mapping[str, Any]],
                  columns: Sequence[tuple[str, str, int]]) -> tuple[list[str], list[list[str]]]:
    shown = {k for k, _t, _d in columns}
    counts = [("vehicles", "Vehicles"), *((k, t) for k, t, delay in _PED_BIKE_COUNTS if delay in shown)]
    header = ["Policy", "Seed", *(t for _k, t, _d in columns), *(t for _k, t in counts)]
    rows = []
    for r in runs:
        cells = [str(r["policy"]), str(r.get("seed", ""))]
        for k, _t, d in columns:
            v = _num(r.get(k))
            if v is not None and k in _COUNT_KEYS and v == int(v):
                d = 0  # a single run's count is a whole number
            cells.append(_DASH if v is None else f"{v:.{d}f}")
        for k, _t in counts:
            v = _num(r.get(k))
            cells.append(_DASH if v is None else f"{v:.0f}")
        rows.append(cells)
    return header, rows


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


_METRIC_NOTE = (
    "Delay is the RESCO metric: tripinfo timeLoss + departDelay per vehicle, vehicles still driving "
    "at the end included, a vehicle never inserted charged end − scheduled depart; mean over all "
    "vehicles scheduled in the window. Trip duration: vehicles that arrived. Queue: halting "
    "vehicles on a signal's approaches, mean over steps and signals. Values are mean ± sample "
    "standard deviation over seeds; a negative delay change is better."
)

_PED_BIKE_NOTE = (
    "Pedestrian delay: per person, the timeLoss of its walks (SUMO's walk timeLoss already holds the waiting at "
    "crossings; a walk still going at the end is charged its waiting so far, a lower bound: see Still walking), "
    "mean over the persons who walked. "
    "Pedestrian max wait: the longest waitingTime of one walk, its standing time over every crossing on its way "
    "(so no single crossing's wait was longer). Bicycle delay: the RESCO delay of the bicycles alone (vClass "
    "bicycle; they are in the vehicle delay too, as in RESCO)."
)


def write_report(
    scenario_name: str,
    runs: list[dict],
    out_dir: Path,
    *,
    baseline_policy: str | None = "sumo-static",
    extra: dict | None = None,
    compiled: Any = None,
    gui_only: Sequence[str] = (),
) -> dict[str, Path]:
    """Write report.md, report.html, delay_over_time.png, queue_per_junction.png, summary.json.

    Returns ``{"markdown", "html", "delay_over_time", "queue_per_junction", "summary"}`` -> path.
    The figures are always written (with a "no data" note when the runs lack the series).
    ``extra`` (e.g. SUMO version, command, commit) is listed under "Settings" and saved in the JSON.
    ``compiled``: the scenario's CompileReport; its notes and the intervals Lintas changed are listed under
    "Scenario".
    """
    if not runs:
        raise ValueError("no runs")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, baseline_policy)
    order = [p.policy for p in summary.policies]
    header, rows = table_rows(summary)
    run_header, run_rows = _per_run_rows(runs, summary.columns)
    shown = {k for k, _t, _d in summary.columns}
    note = _METRIC_NOTE + (" " + _PED_BIKE_NOTE if shown & {k for k, _t, _d in PED_BIKE_COLUMNS} else "")

    paths = {
        "markdown": out / "report.md",
        "html": out / "report.html",
        "delay_over_time": out / "delay_over_time.png",
        "queue_per_junction": out / "queue_per_junction.png",
        "summary": out / "summary.json",
    }
    _plot_delay_over_time(runs, order, scenario_name, paths["delay_over_time"])
    _plot_queue_per_junction(runs, order, scenario_name, paths["queue_per_junction"])

    vehicles = sorted({f"{p.vehicles:.0f}" for p in summary.policies if not math.isnan(p.vehicles)})
    seeds = sorted({str(s) for p in summary.policies for s in p.seeds})
    steps = sorted({f"{float(r['step_length']):g} s" for r in runs if _num(r.get("step_length"))})
    facts = [
        ("Runs", str(len(runs))),
        ("Policies", ", ".join(order)),
        ("Seeds", ", ".join(seeds)),
        ("Vehicles scheduled", ", ".join(vehicles) if vehicles else _DASH),
        *((title, ", ".join(sorted({f"{v:.0f}" for r in runs if (v := _num(r.get(key))) is not None})))
          for key, title, delay in _PED_BIKE_COUNTS if delay in shown and key != "persons_unfinished"),
        ("Baseline", summary.baseline or "none"),
        ("SUMO", sumo_version()),
        ("Step length", ", ".join(steps) if steps else _DASH),
    ]
    trouble = problems(runs)
    ok_line = "None: no latched fault, collision, teleport, lock or vehicle left uninserted."
    notes = scenario_notes(compiled, gui_only)
    changes = _changes_table(compiled) if compiled is not None and (compiled.lengthened or compiled.shortened) else None
    settings = [(str(k), v if isinstance(v, str) else json.dumps(_jsonable(v))) for k, v in (extra or {}).items()]

    # Markdown
    md = [f"# {scenario_name}: signal control comparison", ""]
    md += [f"- **{k}:** {v}" for k, v in facts]
    md += ["", "## Problems", ""] + ([f"- **{p}**" for p in trouble] or [ok_line])
    md += ["", "## Results", "", _markdown_table(header, rows), "", f"_{note}_", ""]
    md += ["## Delay over time", "", "![Delay by arrival time](delay_over_time.png)", ""]
    md += ["## Queue per junction", "", "![Queue per junction](queue_per_junction.png)", ""]
    md += ["## Per-run results", "", _markdown_table(run_header, run_rows, right_from=2), ""]
    if notes:
        md += ["## Scenario", ""] + [f"- {n}" for n in notes] + [""]
    if changes:
        md += ["### Intervals Lintas shows differently from the scenario's programs", "",
               _markdown_table(*changes, right_from=5), ""]
    if settings:
        md += ["## Settings", ""] + [f"- **{k}:** `{v}`" for k, v in settings] + [""]
    paths["markdown"].write_text("\n".join(md), encoding="utf-8")

    # HTML
    esc = html.escape
    body = [f"<h1>{esc(scenario_name)}: signal control comparison</h1>", "<ul>"]
    body += [f"<li><b>{esc(k)}:</b> {esc(v)}</li>" for k, v in facts]
    body += ["</ul>", "<h2>Problems</h2>"]
    body += (["<ul>", *(f'<li class="bad">{esc(p)}</li>' for p in trouble), "</ul>"] if trouble
             else [f"<p>{esc(ok_line)}</p>"])
    body += ["<h2>Results</h2>", _html_table(header, rows), f'<p class="note">{esc(note)}</p>']
    body += ["<h2>Delay over time</h2>", '<img src="delay_over_time.png" alt="Delay by arrival time">']
    body += ["<h2>Queue per junction</h2>", '<img src="queue_per_junction.png" alt="Queue per junction">']
    body += ["<h2>Per-run results</h2>", _html_table(run_header, run_rows)]
    if notes:
        body += ["<h2>Scenario</h2>", "<ul>", *(f"<li>{esc(n)}</li>" for n in notes), "</ul>"]
    if changes:
        body += ["<h3>Intervals Lintas shows differently from the scenario's programs</h3>", _html_table(*changes)]
    if settings:
        body += ["<h2>Settings</h2>", "<ul>"]
        body += [f"<li><b>{esc(k)}:</b> <code>{esc(v)}</code></li>" for k, v in settings]
        body += ["</ul>"]
    doc = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           f"<title>{esc(scenario_name)}: signal control comparison</title>\n<style>{_CSS}</style>\n"
           "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    paths["html"].write_text(doc, encoding="utf-8")

    # JSON summary
    data = {
        "scenario": scenario_name,
        "baseline": summary.baseline,
        "problems": trouble,
        "scenario_notes": notes,
        "policies": [
            {"policy": p.policy, "seeds": p.seeds, "mean": p.mean, "std": p.std, "count": p.count,
             "vehicles": p.vehicles, "delay_change_pct": p.delay_change_pct}
            for p in summary.policies
        ],
        "extra": extra or {},
    }
    paths["summary"].write_text(json.dumps(_jsonable(data), indent=2, default=str), encoding="utf-8")
    return paths
