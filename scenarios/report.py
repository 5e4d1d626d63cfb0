"""The run's summary table (terminal) and ``report.md`` (results folder)."""

from __future__ import annotations

from pathlib import Path


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    return str(value)


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    rows = [("scenario", summary["scenario"]), ("mode", summary["mode"]),
            ("mechanism", summary["mechanism"]),
            ("agents", ", ".join(f"{n} {k}" for k, n in summary["agents"].items() if n))]
    for section in ("costs_eur", "market", "grid", "timing_s", "processes"):
        rows += [(f"{section}.{k}", _fmt(v)) for k, v in summary[section].items()]
    rows.append(("failed agents", ", ".join(summary["failed_agents"]) or "none"))
    return rows


def print_summary(summary: dict, out: Path) -> None:
    rows = summary_rows(summary)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"results: {out}  report: {out / 'report.md'}")


def write_report(out: Path, summary: dict, result) -> Path:
    lines = [f"# lemgrid run: {summary['scenario']} ({summary['mode']})", "",
             "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary_rows(summary)]
    if result.rounds:
        header = ("| round | error kW | sold kW | bought kW | rule applied | limits changed "
                  "| slowest agent s |")
        lines += ["", "## Convergence", "", header, "|---|---|---|---|---|---|---|"]
        for r in result.rounds:
            rec = r.record
            lines.append(f"| {rec.round} | {rec.error_kw:.4f} | {rec.sold_kw.sum():.3f} | "
                         f"{rec.bought_kw.sum():.3f} | {rec.rule or '—'} | {rec.limits_changed} | "
                         f"{max(r.solve_s.values(), default=0):.4f} |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
