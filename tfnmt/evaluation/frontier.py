"""The speed-quality frontier of a benchmark: one point per run and decoding at each batch size
(sentences/s, BLEU), which points no other point beats on both, which methods a baseline
dominates, and the plot (`python -m tfnmt.report` draws it for results/frontier_*.json)."""

from tfnmt.evaluation.analysis import save_figure

# The run names of the Multi30k frontier benchmark: baselines first, then the seed methods.
BASELINES = ("teacher", "at_6-1", "at_12-1")
METHODS = ("hybrid", "hrt", "cmlm", "hint_nart", "dat", "imitate_nat")


def points(rows):
    """Benchmark rows -> {batch: [(run, decoding, sentences/s, BLEU)]}: one point per run and
    decoding, the faster of its XLA settings (both decode the same tokens)."""
    best = {}
    for r in rows:
        if r.get("bleu") is None:
            continue
        key = (r["batch"], r["run"], r["decoding"])
        if key not in best or r["sentences_per_second"] > best[key][2]:
            best[key] = (r["run"], r["decoding"], r["sentences_per_second"], r["bleu"])
    by_batch = {}
    for (batch, *_), point in sorted(best.items(), key=lambda item: item[0]):
        by_batch.setdefault(batch, []).append(point)
    return by_batch


def beats(a, b):
    """a is at least as fast and as good as b, and strictly better in one."""
    return a[2] >= b[2] and a[3] >= b[3] and (a[2] > b[2] or a[3] > b[3])


def pareto_front(batch_points):
    """The points no other point beats, fastest first."""
    front = [p for p in batch_points if not any(beats(q, p) for q in batch_points)]
    return sorted(front, key=lambda p: -p[2])


def dominated(batch_points, baselines=BASELINES[1:]):
    """[(point, baseline point)] for every point of a non-baseline run that a baseline run beats
    (the frontier issue: no seed method may be both slower and worse than a 6-1 or 12-1 AT)."""
    found = []
    for p in batch_points:
        if p[0] in BASELINES:
            continue
        by = [q for q in batch_points if q[0] in baselines and beats(q, p)]
        if by:
            found.append((p, max(by, key=lambda q: q[3])))
    return found


def missing_runs(rows):
    """Frontier run names that have no row."""
    present = {r["run"] for r in rows}
    return [name for name in BASELINES + METHODS if name not in present]


def summary_lines(rows):
    """Markdown lines: the Pareto front and the dominated points at each batch size."""
    lines = []
    missing = missing_runs(rows)
    if missing:
        lines.append(f"- not measured: {', '.join(missing)}")
    for batch, batch_points in points(rows).items():
        front = ", ".join(f"{p[0]} ({p[1]})" for p in pareto_front(batch_points))
        lines.append(f"- batch {batch}: Pareto front {front}")
        for p, q in dominated(batch_points):
            lines.append(f"  - {p[0]} ({p[1]}, {p[2]:g} sent/s, BLEU {p[3]:g}) is dominated by "
                         f"{q[0]} ({q[2]:g} sent/s, BLEU {q[3]:g})")
    return lines


def plot(rows, path):
    """BLEU against sentences/s (log scale), one panel per batch size; the Pareto front is a
    line, baselines are squares and methods circles."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    by_batch = points(rows)
    figure, axes = pyplot.subplots(1, len(by_batch), figsize=(4.5 * len(by_batch), 4.2),
                                   squeeze=False)
    for ax, (batch, batch_points) in zip(axes[0], by_batch.items()):
        for run, decoding, speed, bleu in batch_points:
            ax.scatter([speed], [bleu], marker="s" if run in BASELINES else "o",
                       color="tab:gray" if run in BASELINES else "tab:blue", zorder=3)
            ax.annotate(run if decoding in ("", None) else f"{run}\n{decoding}", (speed, bleu),
                        fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(batch_points)
        ax.plot([p[2] for p in front], [p[3] for p in front], color="tab:red", lw=1,
                zorder=2, label="Pareto front")
        ax.set_xscale("log")
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("sentences / s")
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    save_figure(figure, path)
