"""The after-action report as one self-contained HTML page (inline SVG, no scripts, no
external assets). Every value that comes from events is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

COLOURS = {"low": "#8ab4f8", "medium": "#fbbc04", "high": "#f28b82", "critical": "#d93025",
           "unknown": "#9aa0a6"}
PALETTE = ("#1a73e8", "#e8710a", "#188038", "#d93025", "#9334e6", "#12b5cb", "#f538a0")


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _fmt(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def bar_chart(title: str, groups: dict[str, dict[str, int]], keys: tuple[str, ...]) -> str:
    """Stacked horizontal bars: one bar per group, one segment per key."""
    width, row, left = 640, 26, 110
    total_max = max([sum(v.values()) for v in groups.values()] + [1])
    height = row * len(groups) + 40
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">']
    for i, (name, counts) in enumerate(groups.items()):
        y = 10 + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_e(name)}</text>')
        x = float(left)
        for k in keys:
            n = counts.get(k, 0)
            if not n:
                continue
            w = (width - left - 60) * n / total_max
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 8}" '
                         f'fill="{COLOURS.get(k, "#9aa0a6")}"><title>{_e(name)} {_e(k)}: {n}'
                         f'</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(counts.values())}</text>')
    legend_y = height - 12
    for j, k in enumerate(keys):
        parts.append(f'<rect x="{left + j * 90}" y="{legend_y - 9}" width="10" height="10" '
                     f'fill="{COLOURS.get(k, "#9aa0a6")}"/><text x="{left + j * 90 + 14}" '
                     f'y="{legend_y}">{_e(k)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, series: dict[str, list[int]], bucket_seconds: float,
               colours: dict[str, str] | None = None) -> str:
    width, height, left, bottom = 640, 220, 40, 30
    n = max([len(v) for v in series.values()] + [1])
    top = max([max(v) if v else 0 for v in series.values()] + [1])
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#5f6368"/>',
             f'<text x="4" y="14">{top}</text><text x="4" y="{height - bottom}">0</text>']
    for i, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name) or PALETTE[i % len(PALETTE)]
        pts = " ".join(
            f"{left + (width - left - 10) * j / max(1, n - 1):.1f},"
            f"{height - bottom - (height - bottom - 10) * v / top:.1f}"
            for j, v in enumerate(values)
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}">'
                     f'<title>{_e(name)}</title></polyline>')
        parts.append(f'<text x="{left + i * 90}" y="{height - 8}" fill="{colour}">{_e(name)}'
                     f'</text>')
    parts.append(f'<text x="{width - 10}" y="{height - 8}" text-anchor="end">'
                 f'{_e(_fmt(bucket_seconds))} per point</text></svg>')
    return "".join(parts)


def strip_chart(title: str, dists: dict[str, list[float]], targets: dict[str, Any]) -> str:
    """Each agency's values as dots on a log-ish axis, its target as a red tick."""
    import math

    width, row, left = 640, 30, 110
    values = [v for vs in dists.values() for v in vs] + [
        t for t in targets.values() if isinstance(t, int | float)]
    hi = max([*values, 1.0])

    def x(v: float) -> float:
        return left + (width - left - 20) * math.log1p(max(0.0, v)) / math.log1p(hi)

    height = row * len(dists) + 30
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">']
    for i, (name, vs) in enumerate(dists.items()):
        y = 15 + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{_e(name)}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{width - 20}" y2="{y}" stroke="#dadce0"/>')
        for v in vs[:2000]:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y}" r="3" fill="#1a73e8" '
                         f'fill-opacity="0.5"><title>{_e(_fmt(v))}</title></circle>')
        t = targets.get(name)
        if isinstance(t, int | float):
            parts.append(f'<line x1="{x(t):.1f}" y1="{y - 9}" x2="{x(t):.1f}" y2="{y + 9}" '
                         f'stroke="#d93025" stroke-width="2"><title>target {_e(_fmt(t))}'
                         f'</title></line>')
    parts.append(f'<text x="{left}" y="{height - 4}">0</text><text x="{width - 20}" '
                 f'y="{height - 4}" text-anchor="end">{_e(_fmt(hi))}</text></svg>')
    return "".join(parts)


def table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#202124}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #dadce0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #dadce0;padding:.2em .6em;
text-align:left;font-size:.9em}th{background:#f1f3f4}.headline{display:flex;gap:2em}
.headline div{font-size:1.6em}.headline span{display:block;font-size:.5em;color:#5f6368}
svg text{font-size:12px}"""


def render(f: dict[str, Any]) -> str:
    a = f["alerts"]
    agencies = f["agencies"]
    sev_groups = {ag: a["by_agency"][ag]["by_severity"] for ag in agencies}
    respond = f["time_to_respond_s"]
    share = f["time_to_share_s"]
    collab = f["collaboration"]
    acc = f["accuracy"]
    never = f["never_acknowledged"]
    sections = [
        f"<h1>watchfloor after-action report</h1><p>{_e(f['period']['from'])} to "
        f"{_e(f['period']['to'])}</p>",
        '<div class="headline">'
        f'<div id="h-incidents">{a["incidents"]}<span>incidents</span></div>'
        f'<div id="h-deliveries">{a["total_deliveries"]}<span>alert deliveries</span></div>'
        f'<div id="h-shared">{collab["incidents_shared_with_several"]}<span>shared with '
        "several agencies</span></div>"
        f'<div id="h-notices">{collab["deconfliction_notices"]}<span>deconfliction notices'
        "</span></div>"
        f'<div id="h-unacked">{sum(len(v) for v in never.values())}<span>never acknowledged'
        "</span></div></div>",
        "<h2>Alerts per agency and severity</h2>",
        bar_chart("alerts per agency and severity", sev_groups,
                  ("low", "medium", "high", "critical", "unknown")),
        table(["agency", "incidents", "deliveries", "low", "medium", "high", "critical",
               "unknown"],
              [[ag, a["by_agency"][ag]["incidents"], a["by_agency"][ag]["deliveries"],
                *(sev_groups[ag].get(k, 0) for k in ("low", "medium", "high", "critical",
                                                     "unknown"))]
               for ag in agencies]),
        "<h2>Alerts over time, per agency</h2>",
        line_chart("alerts over time", a["over_time"]["by_agency"],
                   a["over_time"]["bucket_seconds"]),
        "<h2>New incidents over time, per agency</h2>",
        line_chart("incidents over time", a["over_time"]["incidents_by_agency"],
                   a["over_time"]["bucket_seconds"]),
        "<h2>Alerts over time, per severity</h2>",
        line_chart("severity over time", a["over_time"]["by_severity"],
                   a["over_time"]["bucket_seconds"], COLOURS),
        "<h2>Time to share (event arrival to alert delivered)</h2>",
        strip_chart("time to share", f["distributions_s"]["share"], {}),
        table(["agency", "alerts", "p50", "p90", "max"],
              [[ag, share[ag]["n"], _fmt(share[ag]["p50"]), _fmt(share[ag]["p90"]),
                _fmt(share[ag]["max"])] for ag in agencies]),
        "<h2>Time to respond (delivered to first acknowledgement), against target</h2>",
        strip_chart("time to respond", f["distributions_s"]["respond"],
                    {ag: respond[ag]["target"] for ag in agencies}),
        table(["agency", "acknowledged", "within target", "target", "p50", "p90",
               "never acknowledged"],
              [[ag, respond[ag]["n"], respond[ag]["within_target"], _fmt(respond[ag]["target"]),
                _fmt(respond[ag]["p50"]), _fmt(respond[ag]["p90"]), len(never[ag])]
               for ag in agencies]),
        "<h2>Accuracy from analyst verdicts</h2>",
        table(["detector", "true positive", "false positive", "precision"],
              [[d, v["true_positive"], v["false_positive"],
                "-" if v["precision"] is None else v["precision"]]
               for d, v in acc["by_detector"].items()]),
        table(["agency", "true positive", "false positive", "precision"],
              [[ag, v["true_positive"], v["false_positive"],
                "-" if v["precision"] is None else v["precision"]]
               for ag, v in acc["by_agency"].items()]),
        f"<p>Detections that later proved false: {len(acc['proved_false'])}</p>",
        table(["alert", "agency", "detectors"],
              [[d["alert_id"], d["agency"], ", ".join(d["detectors"])]
               for d in acc["proved_false_detail"]]),
        "<h2>Collaboration</h2>",
        f"<p>{collab['incidents_shared_with_several']} incidents went to more than one agency; "
        f"{collab['deconfliction_notices']} deconfliction notices, "
        f"{collab['notices_both_acted']} of them acted on by both sides (p50 "
        f"{_e(_fmt(collab['both_acted_within_s']['p50']))}).</p>",
        "<h3>Incidents shared with more than one agency</h3>",
        table(["alert", "agencies"],
              [[aid, ", ".join(ags)] for aid, ags in sorted(collab["shared_with"].items())]),
        "<h3>Deconfliction: time until both sides acted on a notice</h3>",
        table(["notices", "both acted", "p50", "p90", "max"],
              [[collab["deconfliction_notices"], collab["notices_both_acted"],
                _fmt(collab["both_acted_within_s"]["p50"]),
                _fmt(collab["both_acted_within_s"]["p90"]),
                _fmt(collab["both_acted_within_s"]["max"])]]),
        "<h3>What each agreement let through (fields)</h3>",
        table(["agency", "shared in clear", "pseudonymised", "redacted"],
              [[ag, ", ".join(v["shared"]), ", ".join(v["pseudonymised"]),
                ", ".join(v["redacted"])] for ag, v in collab["agreements"].items()]),
        "<h2>Top entities</h2>",
        table(["type", "id", "incidents"],
              [[e["type"], e["id"], e["incidents"]] for e in f["top_entities"]]),
        "<h2>Longest-running incidents</h2>",
        "".join(
            f"<h3>{_e(s['alert_id'])} ({_e(s['severity'])}, {s['versions']} versions, "
            f"{_e(_fmt(s['seconds']))})</h3>"
            + table(["time", "version", "agency", "severity"],
                    [[t["t"], t["version"], t["agency"], t["severity"]] for t in s["timeline"]])
            for s in f["longest_incidents"]
        ),
    ]
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\"><title>watchfloor after-action report</title>"
            f"<style>{CSS}</style></head><body>" + "".join(sections) + "</body></html>\n")
