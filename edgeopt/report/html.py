"""index.html: one self-contained file (charts inlined as data: URIs), tables sortable by a click, no network."""
from __future__ import annotations

import base64
import html

from edgeopt.report.results import Run
from edgeopt.report.tables import picks

COLUMNS = (("variant", "variant"), ("backend", "backend"), ("top1", "top-1 %"), ("top1_drop_pt", "drop pt"),
           ("top1_agreement", "agreement %"), ("size_bytes", "size MB"), ("size_ratio", "size ratio"),
           ("bitops_ratio", "BitOps ratio"), ("peak_rss_mb", "peak RSS MB"), ("latency_median_ms", "latency ms"),
           ("speedup_vs_ort_fp32", "vs ORT FP32"), ("budget_verdict", "budget"))
SCALE = {"top1": 100, "top1_agreement": 100, "size_bytes": 1e-6}

SCRIPT = """
window.addEventListener('load', () => {  // what a headless browser check reads back (tests/test_report.py)
  document.body.dataset.imagesDecoded = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.tableRows = document.querySelectorAll('table.sortable tbody tr').length;
  if (location.hash !== '#check-sort') return;  // the same check clicks "latency ms" and reads the order back
  const th = [...document.querySelectorAll('table.sortable th')].find(h => h.textContent === 'latency ms');
  th.click();
  const col = [...th.parentNode.children].indexOf(th);
  const vs = [...th.closest('table').tBodies[0].rows].map(r => r.cells[col].dataset.v).filter(v => v !== '').map(Number);
  document.body.dataset.sortCheck = vs.length > 1 && vs.every((v, i) => !i || vs[i - 1] <= v) ? 'ascending' : 'unsorted';
});
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], up = th.dataset.dir !== 'asc';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? 'asc' : 'desc';
  const key = td => { const v = td.dataset.v; return v === '' ? NaN : (isNaN(+v) ? v : +v); };
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[col]), y = key(b.cells[col]);
    if (typeof x === 'number' && isNaN(x)) return 1; if (typeof y === 'number' && isNaN(y)) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
  }).forEach(r => body.appendChild(r));
}));
"""
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right} td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
th{cursor:pointer;background:#f3f3f3} th[data-dir=asc]::after{content:' \\25B2'} th[data-dir=desc]::after{content:' \\25BC'}
img{max-width:100%;border:1px solid #eee;margin:.5em 0} .over{color:#b00} .xfail{color:#a60}
"""


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return '<td data-v="">-</td>'
    if isinstance(value, str):
        cls = value.split(":")[0] if key == "budget_verdict" else ""
        shown = value + (" (simulated)" if key == "variant" and row.get("simulated") else "")
        return f'<td data-v="{html.escape(value)}" class="{cls}">{html.escape(shown)}</td>'
    shown = value * SCALE.get(key, 1)
    return f'<td data-v="{shown!r}">{shown:.4g}</td>'


def _table(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join("<tr>" + "".join(_cell(r, k) for k, _ in COLUMNS) + "</tr>"
                   for r in sorted(rows, key=lambda r: (r["variant"], r["backend"])))
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(name: str, png: bytes) -> str:
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def page(runs: list[Run], charts: dict[str, bytes], machines_md: list[str]) -> str:
    parts = ["<!doctype html><html lang=en><meta charset=utf-8><title>edgeopt report</title>",
             f"<style>{STYLE}</style><h1>edgeopt report</h1><h2>Machines</h2><ul>"]
    parts += [f"<li>{html.escape(line.lstrip('- ').replace('**', '').replace('`', ''))}</li>" for line in machines_md]
    parts.append("</ul>")
    for model in sorted({r["model"] for run in runs for r in run.rows}):
        parts.append(f"<h2 id='{html.escape(model)}'>{html.escape(model)}</h2>")
        for run in runs:
            rows = [r for r in run.rows if r["model"] == model]
            if rows:
                what = "".join(f"<li>{html.escape(line.lstrip('- ').replace('**', ''))}</li>" for line in picks(rows))
                parts.append(f"<h3>{html.escape(run.source)}</h3><ul>{what}</ul>{_table(rows)}")
        parts += [_img(n, png) for n, png in charts.items() if n.startswith(f"charts/{model}-")]
    parts += [_img(n, png) for n, png in charts.items() if n.startswith("charts/capability")]
    parts.append(f"<script>{SCRIPT}</script></html>")
    return "\n".join(parts)
