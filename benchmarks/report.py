"""Compare runs side by side: a markdown table and bar charts per task (like the paper's figs. 2–3).

Per task the chart shows each class's F1 and the class average ("AVG", the macro F1, with its
95% bootstrap interval as an error bar), one bar colour per run; ``summary.png`` shows AVG per task.
"""

from __future__ import annotations

import json
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError

from .tasks import CODES


def load_run(folder: str | Path) -> tuple[str, dict]:
    """(name, metrics) of a run folder (or of a metrics.json file)."""
    path = Path(folder)
    metrics_file = path if path.is_file() else path / "metrics.json"
    if not metrics_file.is_file():
        raise RadioLlavaError(f"{folder}: no metrics.json; give the folder of a finished `radiollava bench run`")
    try:
        metrics = json.loads(metrics_file.read_text())
    except ValueError as exc:
        raise RadioLlavaError(f"{metrics_file}: not valid JSON ({exc})") from None
    name = metrics_file.parent.name
    run_file = metrics_file.parent / "run.json"
    if run_file.is_file():
        try:
            name = json.loads(run_file.read_text()).get("name") or name
        except ValueError:
            pass
    return name, metrics


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def _fmt(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def markdown(runs: list[tuple[str, dict]]) -> str:
    """The report text: per task, classes and AVG as rows (F1 in %), runs as columns."""
    names = [n for n, _ in runs]
    codes = [c for c in CODES if any(c in m for _, m in runs)]
    lines = ["# Benchmark report", "",
             "F1 in % per class; AVG is the macro F1 with its 95% bootstrap interval. Unparsed answers "
             "count as wrong (their number is given).", ""]
    lines += ["| run | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
    for name, m in runs:
        lines.append(f"| {name} | " + " | ".join(_fmt(m[c].get("macro_f1")) if c in m else "–" for c in codes) + " |")
    for code in codes:
        present = [(n, m[code]) for n, m in runs if code in m]
        first = present[0][1]
        lines += ["", f"## {first.get('title', code)}", ""]
        lines += ["| | " + " | ".join(n for n, _ in present) + " |", "|---|" + "---|" * len(present)]
        labels = list(dict.fromkeys(lab for _, t in present for lab in t.get("per_class", {})))
        for lab in labels:
            cells = [_fmt(t.get("per_class", {}).get(lab, {}).get("f1")) for _, t in present]
            sup = next((t["per_class"][lab]["support"] for _, t in present if lab in t.get("per_class", {})), "")
            lines.append(f"| {lab} (n={sup}) | " + " | ".join(cells) + " |")

        def avg(t):
            ci = t.get("macro_f1_ci")
            return _fmt(t.get("macro_f1")) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")
        lines.append("| **AVG** | " + " | ".join(avg(t) for _, t in present) + " |")
        lines.append("| accuracy | " + " | ".join(_fmt(t.get("accuracy")) for _, t in present) + " |")
        if first.get("kind") == "multi":
            lines.append("| Hamming loss | " + " | ".join(f"{t.get('hamming_loss', 0):.3f}" for _, t in present) + " |")
        lines.append("| unparsed / n | " + " | ".join(
            f"{t.get('unparsed', 0)} / {t.get('questions', t.get('n', 0))}" for _, t in present) + " |")
        lines.append("| mode | " + " | ".join(str(t.get("mode", "–")) for _, t in present) + " |")
        rates = [t.get("throughput", {}).get("images_per_s") for _, t in present]
        lines.append("| images/s | " + " | ".join("–" if r is None else f"{r:.2f}" for r in rates) + " |")
        lines.append("")
        lines.append(f"![{code}]({code}.png)")
    lines += ["", f"runs: {', '.join(names)}", ""]
    return "\n".join(lines)


def _bars(ax, groups: list[str], series: list[tuple[str, list, list | None]], ylabel: str):
    import numpy as np

    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    colours = [f"C{i % 10}" for i in range(n)]
    for i, (name, values, errs) in enumerate(series):
        vals = [np.nan if v is None else 100 * v for v in values]
        yerr = None
        if errs is not None:
            yerr = np.array([[max(0.0, 100 * (v - lo)) if v is not None and lo is not None else 0.0,
                              max(0.0, 100 * (hi - v)) if v is not None and hi is not None else 0.0]
                             for v, (lo, hi) in zip(values, errs)]).T
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=name, color=colours[i], yerr=yerr, capsize=2,
               edgecolor="black", linewidth=0.4)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30 if len(groups) > 5 else 0, ha="right" if len(groups) > 5 else "center")
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def plot_task(code: str, runs: list[tuple[str, dict]], path: Path) -> Path:
    """Grouped bars: each class's F1 and AVG, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [(n, m[code]) for n, m in runs if code in m]
    labels = list(dict.fromkeys(lab for _, t in present for lab in t.get("per_class", {})))
    groups = labels + ["AVG"]
    series = []
    for name, t in present:
        pc = t.get("per_class", {})
        values = [pc.get(lab, {}).get("f1") for lab in labels] + [t.get("macro_f1")]
        errs = [tuple(pc.get(lab, {}).get("f1_ci") or (None, None)) for lab in labels] + \
            [tuple(t.get("macro_f1_ci") or (None, None))]
        series.append((name, values, errs))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 2), 3.6))
    _bars(ax, groups, series, "F1 (%)")
    ax.set_title(present[0][1].get("title", code), fontsize=10)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_summary(runs: list[tuple[str, dict]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes = [c for c in CODES if any(c in m for _, m in runs)]
    series = [(name, [m.get(c, {}).get("macro_f1") for c in codes],
               [tuple(m.get(c, {}).get("macro_f1_ci") or (None, None)) for c in codes]) for name, m in runs]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(codes) + 2), 3.6))
    _bars(ax, codes, series, "AVG F1 (%)")
    ax.set_title("Class-averaged F1 per benchmark", fontsize=10)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(run_dirs: list[str], out: str | Path, names: list[str] | None = None) -> list[Path]:
    """Write report.md, one PNG per task and summary.png into ``out``; returns the paths."""
    from glue_radiollava.core.files import atomic_write_text

    if not run_dirs:
        raise RadioLlavaError("give at least one run folder")
    runs = [load_run(d) for d in run_dirs]
    if names:
        if len(names) != len(runs):
            raise RadioLlavaError(f"--names gives {len(names)} names for {len(runs)} runs")
        runs = [(n, m) for n, (_, m) in zip(names, runs)]
    runs = list(zip(_unique([n for n, _ in runs]), [m for _, m in runs]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for code in CODES:
        if any(code in m for _, m in runs):
            written.append(plot_task(code, runs, out / f"{code}.png"))
    written.append(plot_summary(runs, out / "summary.png"))
    written.insert(0, atomic_write_text(out / "report.md", markdown(runs)))
    return written
