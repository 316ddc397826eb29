"""The HTML report: tables, plots and a sample grid, every image embedded (one self-contained file).

    write_report(results, out_dir, comparison=None)   # -> out_dir/report.html

`results` are EvalResults of one or more checkpoints on the same data (the first carries the
oracle and baseline rows). Sections: summary; per task a metric table (model rows, oracle,
baseline; per source and pooled), a headline bar chart and an error histogram; a sample grid
(input, prediction, decoded prediction, truth, error map); headline metric vs training step
when several checkpoints are given; generation win rates against the base model; failures.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: no display on training nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evals.evaluator import ALL, EvalResult  # noqa: E402
from formats.atomic import atomic_write_text  # noqa: E402
from evals.scoring import HEADLINE  # noqa: E402
from evals.visualize import ERROR_SCALE, show_error, show_values  # noqa: E402

TASK_TITLES = {"depth": "Metric depth", "normals": "Surface normals", "semantic": "Semantic segmentation",
               "instance": "Instance segmentation (mask AP)", "referring": "Referring segmentation",
               "t2i": "Text-to-image (generation preserved)", "edit": "Editing (generation preserved)"}
# Columns shown per task, in order (JSON has every number).
COLUMNS = {
    "depth": ["abs_rel", "rmse", "log10", "silog", "delta1", "delta2", "delta3", "aligned/abs_rel", "aligned/delta1",
              "coverage"],
    "normals": ["mean_deg", "median_deg", "rmse_deg", "within_11.25", "within_22.5", "within_30", "pred_invalid"],
    "semantic": ["miou", "pixel_acc"],
    "instance": ["AP", "AP50", "AP75", "AR100"],
    "referring": ["giou", "ciou"],
    "t2i": ["feature_distance", "frechet_feature"],
    "edit": ["ssim", "psnr", "feature_distance", "frechet_feature"],
}
COLORS = {"oracle": "#2ca02c", "vae-oracle": "#17a589", "baseline": "#7f7f7f", "pixel_baseline": "#a0522d"}
REFERENCES = tuple(COLORS)  # the reference rows of every table and chart
MODEL_COLORS = ["#1f77b4", "#ff7f0e", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _fmt(v: Any) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        return f"{v:.4g}"
    return f"{int(v)}" if isinstance(v, (int, float)) else html.escape(str(v))


def _rows(results: Sequence[EvalResult], task: str) -> list[tuple[str, str, dict[str, float]]]:
    """(row label, source, metrics): every model, then the references, per source (pooled first)."""
    ref = results[0]
    sources = sorted({s for r in results for s in r.metrics.get("model", {}).get(task, {})} -
                     {ALL}) if results else []
    rows = []
    for src in [ALL] + sources:
        for r in results:
            m = r.metrics.get("model", {}).get(task, {}).get(src)
            if m is not None:
                rows.append((r.name, src, m))
        for pname in REFERENCES:
            m = ref.metrics.get(pname, {}).get(task, {}).get(src)
            if m is not None:
                rows.append((pname, src, m))
    return rows


def metric_table(results: Sequence[EvalResult], task: str) -> str:
    cols = COLUMNS[task]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["model", "source", *cols, "n", "failed"])
    body = []
    for label, src, m in _rows(results, task):
        cls = f' class="{label}"' if label in COLORS else ""
        fail = m.get("failed", 0)
        cells = [html.escape(label), html.escape(src), *(_fmt(m.get(c)) for c in cols), _fmt(m.get("n")),
                 f'<span class="bad">{_fmt(fail)}</span>' if fail else "0"]
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def headline_chart(results: Sequence[EvalResult], task: str) -> str:
    metric, lower = HEADLINE[task]
    rows = _rows(results, task)
    sources = list(dict.fromkeys(src for _, src, _ in rows))
    labels = list(dict.fromkeys(label for label, _, _ in rows))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(sources) * max(1, len(labels)) / 3, 2.6))
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        vals = [next((m.get(metric, np.nan) for lab, s, m in rows if lab == label and s == src), np.nan)
                for src in sources]
        color = COLORS.get(label, MODEL_COLORS[i % len(MODEL_COLORS)])
        ax.bar(np.arange(len(sources)) + i * width, vals, width, label=label, color=color)
    ax.set_xticks(np.arange(len(sources)) + width * (len(labels) - 1) / 2, sources)
    ax.set_ylabel(f"{metric} ({'lower' if lower else 'higher'} is better)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{task}: {metric}", fontsize=9)
    return _png(fig)


def histogram_chart(results: Sequence[EvalResult], task: str) -> str | None:
    series = [(r.name, r.histograms.get("model", {}).get(task)) for r in results]
    series += [(p, results[0].histograms.get(p, {}).get(task)) for p in REFERENCES]
    series = [(name, h) for name, h in series if h]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 2.6))
    for i, (name, h) in enumerate(series):
        color = COLORS.get(name, MODEL_COLORS[i % len(MODEL_COLORS)])
        if "counts" in h:
            edges, counts = np.array(h["edges"]), np.array(h["counts"])
            frac = counts / max(counts.sum(), 1)
            ax.step(edges[:-1], frac, where="post", label=name, color=color)
        else:
            ax.hist(h["values"], bins=20, histtype="step", label=name, color=color)
    if task == "depth":
        ax.set_xlabel("log2(predicted / true depth), valid pixels (0 = exact; +1 = twice too far)")
        ax.set_ylabel("fraction of pixels")
    elif task == "normals":
        ax.set_xlabel("angular error, degrees (last bin: >= 89)")
        ax.set_ylabel("fraction of pixels")
    else:
        ax.set_xlabel(f"per-sample {series[0][1].get('label', '')}")
        ax.set_ylabel("samples")
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def sample_grid(result: EvalResult, task: str) -> str | None:
    rows = result.examples.get(task) or []
    if not rows:
        return None
    cols = ["input", "prediction", "decoded", "truth", f"error ({ERROR_SCALE[task][1]})"]
    fig, axes = plt.subplots(len(rows), 5, figsize=(11, 2.3 * len(rows)), squeeze=False)
    for r, ex in enumerate(rows):
        s = ex["sample"]
        pics = [ex["input"], ex["prediction"], show_values(s, ex["decoded"], ex["truth"]),
                show_values(s, ex["truth"], ex["truth"]), show_error(task, ex["error"])]
        for c, pic in enumerate(pics):
            ax = axes[r, c]
            ax.axis("off")
            if pic is not None:
                ax.imshow(pic, interpolation="nearest")
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
        axes[r, 0].text(0, -0.02, f"{ex['key']} ({ex['source']})", transform=axes[r, 0].transAxes, fontsize=7,
                        va="top")
    fig.tight_layout()
    return _png(fig)


def step_chart(results: Sequence[EvalResult]) -> str | None:
    """Headline metric per task against the training step (several checkpoints)."""
    pts = [(r.info.get("step"), r) for r in results if r.info.get("role") != "base"]
    pts = sorted(((s, r) for s, r in pts if s is not None), key=lambda x: x[0])
    tasks = [t for t in HEADLINE if any(t in r.metrics.get("model", {}) for _, r in pts)]
    if len(pts) < 2 or not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.0 * len(tasks), 2.6), squeeze=False)
    ref = results[0]
    for ax, task in zip(axes[0], tasks):
        metric, lower = HEADLINE[task]
        steps = [s for s, _ in pts]
        vals = [r.metrics["model"].get(task, {}).get(ALL, {}).get(metric, np.nan) for _, r in pts]
        ax.plot(steps, vals, "o-", color=MODEL_COLORS[0], label="model")
        for pname in REFERENCES:
            v = ref.metrics.get(pname, {}).get(task, {}).get(ALL, {}).get(metric)
            if v is not None and np.isfinite(v):
                ax.axhline(v, color=COLORS[pname], ls="--", lw=1, label=pname)
        ax.set_title(f"{task}: {metric} ({'lower' if lower else 'higher'} better)", fontsize=8)
        ax.set_xlabel("training step")
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return _png(fig)


def win_rate_chart(comparison: dict[str, Any]) -> str | None:
    items = [(f"{task}: {measure}", w) for task, measures in comparison.get("win_rates", {}).items()
             for measure, w in measures.items() if w.get("n")]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.4 * len(items)))
    y = np.arange(len(items))
    rates = np.array([w["win_rate"] for _, w in items])
    lo = np.maximum(rates - np.array([w["ci_low"] for _, w in items]), 0.0)  # ties-as-half can sit outside
    hi = np.maximum(np.array([w["ci_high"] for _, w in items]) - rates, 0.0)  # the Wilson interval of wins
    ax.barh(y, rates, xerr=[lo, hi], color=MODEL_COLORS[0], capsize=3)
    ax.axvline(0.5, color="k", lw=1, ls="--")
    ax.set_yticks(y, [label for label, _ in items], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("tuned model's win rate vs base (ties count half; 95% Wilson interval)")
    return _png(fig)


def _failures(results: Sequence[EvalResult]) -> str:
    rows = [(r.name if f["predictor"] == "model" else f["predictor"], f) for r in results for f in r.failures
            if f["predictor"] == "model" or r is results[0]]
    if not rows:
        return "<p>No sample failed.</p>"
    counts: dict[tuple[str, str, str], int] = {}
    for name, f in rows:
        counts[(name, f["task"], f["reason"])] = counts.get((name, f["task"], f["reason"]), 0) + 1
    table = "".join(f"<tr><td>{html.escape(n)}</td><td>{t}</td><td>{r}</td><td>{c}</td></tr>"
                    for (n, t, r), c in sorted(counts.items()))
    examples = "".join(f"<li><code>{html.escape(f['key'])}</code> ({html.escape(name)}, {f['task']}): "
                       f"{html.escape(f['message'])}</li>" for name, f in rows[:20])
    return (f'<p class="bad">{len(rows)} failed samples: excluded from the averages above and counted in their '
            f'<em>failed</em> column.</p><table><tr><th>model</th><th>task</th><th>reason</th><th>samples</th></tr>'
            f"{table}</table><ul>{examples}</ul>")


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right} th{background:#f4f4f4}
td:first-child,td:nth-child(2){text-align:left}
tr.oracle td{color:#2a7a2a} tr.baseline td{color:#777}
.bad{color:#c00;font-weight:bold} img{max-width:100%} .plots img{margin-right:12px;vertical-align:top}
section{border-top:2px solid #eee;margin-top:20px}
"""


def render_html(results: Sequence[EvalResult], comparison: dict[str, Any] | None = None,
                title: str = "vistune evaluation") -> str:
    """The page. The sample grid shows the last result that is not the base model (role "base")."""
    if not results:
        raise ValueError("render_html: no results to report")
    ref = results[0]
    shown = next((r for r in reversed(results) if r.info.get("role") != "base"), results[-1])
    tasks = [t for t in HEADLINE if any(t in r.metrics.get("model", {}) for r in results)]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    info = "".join(f"<li><b>{html.escape(r.name)}</b>: " + html.escape(", ".join(
        f"{k} {v}" for k, v in r.info.items() if k in ("checkpoint", "step", "prediction_region", "steps",
                                                         "guidance", "seed"))) + "</li>" for r in results)
    base = ref.baseline or {}
    parts.append(f"<ul>{info}<li>reference rows: <b>oracle</b> = the ground truth encoded and decoded "
                 f"(the floor the codec alone imposes); <b>pixel_baseline</b> = the per-pixel median depth and "
                 f"mean normal of the same data (the constant answer for other tasks); <b>baseline</b> = "
                 f"a constant answer from "
                 f"{html.escape(str(base.get('origin', '-')))}: "
                 f"{html.escape('; '.join(f'{k}: {v}' for k, v in base.get('predicts', {}).items()))}</li>"
                 f"<li>depth protocols per source: {html.escape(str(ref.protocols or '-'))}</li>"
                 f"<li>scoring protocols (evals/protocols.py): "
                 f"{html.escape('; '.join(ref.protocol_settings.values()) or '-')}</li>"
                 f"<li>unscored tasks skipped: {html.escape(str(ref.skipped or 'none'))}</li></ul>")
    if (chart := step_chart(results)) is not None:
        parts.append(f"<section><h2>Metrics vs training step</h2>{_img(chart, 'metric vs step')}</section>")
    if comparison:
        parts.append("<section><h2>Generation preserved: tuned vs base</h2>")
        parts.append(f"<p>{html.escape(comparison.get('summary', ''))}</p>")
        if (chart := win_rate_chart(comparison)) is not None:
            parts.append(_img(chart, "win rates"))
        parts.append("</section>")
    for task in tasks:
        parts.append(f"<section><h2>{TASK_TITLES[task]}</h2>{metric_table(results, task)}<div class='plots'>")
        parts.append(_img(headline_chart(results, task), f"{task} headline"))
        if (chart := histogram_chart(results, task)) is not None:
            parts.append(_img(chart, f"{task} errors"))
        parts.append("</div>")
        if (grid := sample_grid(shown, task)) is not None:
            parts.append(f"<h3>Samples ({html.escape(shown.name)})</h3>{_img(grid, f'{task} samples')}")
        parts.append("</section>")
    parts.append(f"<section><h2>Failures</h2>{_failures(results)}</section></body></html>")
    return "".join(parts)


def write_report(results: Sequence[EvalResult], out_dir: str | Path, comparison: dict[str, Any] | None = None,
                 title: str = "vistune evaluation") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    atomic_write_text(path, render_html(results, comparison, title))
    return path
