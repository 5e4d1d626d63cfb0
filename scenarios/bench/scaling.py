"""``lemgrid bench --scale N [N ...] [--mechanism NAME ...]``: one distributed day per
community size (market and 96 power flows, agents packed into processes), under the
scenario's mechanism or each mechanism named, with wall time, rounds, time per round and
the peak memory of every process of the run; a table and a figure of the scaling curves."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from lemgrid.scenarios.bench.memory import PeakMemory
from lemgrid.scenarios.schema import Scenario, load_scenario

GOALS = {"wall_s": 60.0, "memory_pss_mb": 8192.0}  # a 1000-agent day: ≤ 60 s, ≤ 8 GB
COLUMNS = ("agents", "processes", "rounds", "startup_s", "market_s", "round_s", "rest_s",
           "wall_s", "memory_pss_mb", "memory_rss_mb", "voltage_violations", "failed_agents")


def sized(path: Path, agents: int, per_process: int | None = None,
          mechanism: str | None = None, overrides: tuple[str, ...] = ()) -> Scenario:
    """The scenario with its two templates' counts set in their ratio to sum ``agents``
    (``per_process`` agents packed in a simulator process, the market ``mechanism`` and
    the ``overrides`` (``KEY=VALUE``), where given)."""
    market = [*overrides, *([] if mechanism is None else [f"market.mechanism={mechanism}"])]
    base = load_scenario(path, market)
    counts = [t.count for t in base.templates]
    if len(counts) != 2:
        raise ValueError(f"{path}: a scaling scenario has two templates, not {len(counts)}")
    first = round(agents * counts[0] / sum(counts))
    packed = [] if per_process is None else [f"runtime.agents_per_process={per_process}"]
    return load_scenario(path, [*market, f"templates.0.count={first}",
                                f"templates.1.count={agents - first}", *packed])


def one_size(s: Scenario, tmp: Path) -> dict:
    from lemgrid.scenarios.run.world import run_scenario

    with PeakMemory() as mem:
        summary = run_scenario(s, tmp)
    t, rounds = summary["timing_s"], summary["market"]["rounds"]
    return {"agents": sum(summary["agents"][k] for k in summary["agents"]),
            "processes": summary["processes"]["agents"], "rounds": rounds,
            "startup_s": t["startup"], "market_s": t["market"],
            "round_s": t["market"] / rounds if rounds else None, "rest_s": t["grid"],
            "wall_s": t["wall"], "memory_pss_mb": mem.pss_mb, "memory_rss_mb": mem.rss_mb,
            "voltage_violations": summary["grid"]["voltage_violations"],
            "failed_agents": len(summary["failed_agents"])}


def _median(values: list):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_scaling(path: Path, sizes: list[int], runs: int,
                per_process: int | None = None, keep: Path | None = None,
                mechanism: str | None = None, overrides: tuple[str, ...] = ()):
    """One row per size, yielded as each size finishes: the median of ``runs`` runs,
    every value kept under ``values``. ``keep``: a folder that keeps each run's results
    (``keep/<agents>/<run>``, under ``keep/<mechanism>`` where one is named), else they
    go."""
    for n in sizes:
        s = sized(path, n, per_process, mechanism, overrides)
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp) if keep is None else Path(keep) / (mechanism or "")
            where = base / str(n)
            results = [one_size(s, where / str(i)) for i in range(runs)]
        row = {k: _median([r[k] for r in results]) for k in COLUMNS}
        row |= {f"{k}_min": min(r[k] for r in results) for k in ("wall_s", "memory_pss_mb")}
        row |= {f"{k}_max": max(r[k] for r in results) for k in ("wall_s", "memory_pss_mb")}
        yield row | {"mechanism": s.market.mechanism, "values": results}


def scaling_table(rows: list[dict]) -> list[str]:
    head = (f"{'mechanism':<10} {'agents':>7} {'procs':>6} {'rounds':>6} {'startup s':>10} "
            f"{'market s':>9} {'s/round':>8} {'rest s':>8} {'wall s':>8} {'(min–max)':>15} "
            f"{'PSS MB':>8} {'RSS MB':>8} {'V viol.':>7} {'failed':>6}")
    lines = [head]
    for r in rows:
        per_round = "—" if r["round_s"] is None else f"{r['round_s']:.2f}"
        lines.append(f"{r['mechanism']:<10} {r['agents']:>7.0f} {r['processes']:>6.0f} "
                     f"{r['rounds']:>6.0f} "
                     f"{r['startup_s']:>10.1f} {r['market_s']:>9.1f} {per_round:>8} "
                     f"{r['rest_s']:>8.1f} "
                     f"{r['wall_s']:>8.1f} {r['wall_s_min']:>7.1f}–{r['wall_s_max']:<7.1f} "
                     f"{r['memory_pss_mb']:>8.0f} {r['memory_rss_mb']:>8.0f} "
                     f"{r['voltage_violations']:>7.0f} {r['failed_agents']:>6.0f}")
    lines.append(f"goal at 1000 agents: wall ≤ {GOALS['wall_s']:.0f} s, memory (PSS, all "
                 f"processes) ≤ {GOALS['memory_pss_mb']:.0f} MB")
    return lines


def scaling_figure(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len({r["mechanism"] for r in rows}) > 1:
        return _per_mechanism_figure(rows, path, plt)
    agents = [r["agents"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("wall_s", "end to end"), ("rest_s", "model building + stepping"),
                       ("market_s", "market rounds"), ("startup_s", "start-up")):
        ax1.plot(agents, [r[key] for r in rows], marker="o", label=label)
    ax1.axhline(GOALS["wall_s"], color="grey", ls="--", lw=1, label="goal (1000 agents)")
    ax1.set(xlabel="agents", ylabel="seconds (median)", title="wall time of one day")
    ax1.legend(fontsize=8)
    ax2.plot(agents, [r["memory_pss_mb"] / 1024 for r in rows], marker="o", label="PSS sum")
    ax2.plot(agents, [r["memory_rss_mb"] / 1024 for r in rows], marker="s", ls=":",
             label="RSS sum")
    ax2.axhline(GOALS["memory_pss_mb"] / 1024, color="grey", ls="--", lw=1, label="goal")
    ax2.set(xlabel="agents", ylabel="GB", title="peak memory, all processes")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _per_mechanism_figure(rows: list[dict], path: Path, plt) -> Path:
    """One curve per mechanism: wall time of the day, time per market round, memory."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (("wall_s", 1.0, "seconds (median)", "wall time of one day"),
              ("round_s", 1.0, "seconds (median)", "time per market round"),
              ("memory_pss_mb", 1 / 1024, "GB", "peak memory (PSS), all processes"))
    for mech in dict.fromkeys(r["mechanism"] for r in rows):
        mine = [r for r in rows if r["mechanism"] == mech]
        for ax, (key, factor, unit, title) in zip(axes, panels, strict=True):
            points = [(r["agents"], r[key] * factor) for r in mine if r[key] is not None]
            ax.plot(*zip(*points), marker="o", label=mech) if points else None
            ax.set(xlabel="agents", ylabel=unit, title=title, xscale="log", yscale="log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
