"""The speed-quality frontier of a benchmark: one point per run and decoding at each batch size
(sentences/s, BLEU), which points no other point beats on both, which methods a baseline
dominates, and the plot (`python -m tfnmt.report` draws it for results/frontier_*.json)."""

import fnmatch
import os

from tfnmt.evaluation.analysis import markdown_table, save_figure

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


def summary_lines(rows, unit="sent/s"):
    """Markdown lines: the Pareto front and the dominated points at each batch size (speeds in
    `unit`)."""
    lines = []
    missing = missing_runs(rows)
    if missing:
        lines.append(f"- not measured: {', '.join(missing)}")
    for batch, batch_points in points(rows).items():
        front = ", ".join(f"{p[0]} ({p[1]})" for p in pareto_front(batch_points))
        lines.append(f"- batch {batch}: Pareto front {front}")
        for p, q in dominated(batch_points):
            lines.append(f"  - {p[0]} ({p[1]}, {p[2]:g} {unit}, BLEU {p[3]:g}) is dominated by "
                         f"{q[0]} ({q[2]:g} {unit}, BLEU {q[3]:g})")
    return lines


# The targets the frontier issue (#15) and the lean-decoding issue (#16) set on the frontier
# benchmark: (issue, run, decoding, reference run, reference decoding, "bleu" (difference) or
# "speed" (ratio of sentences/s), bound, batch sizes). Decodings are fnmatch patterns.
TARGETS = (
    ("#15", "hybrid", "beam 4", "teacher", "beam 4", "bleu", -0.5, (1,)),
    ("#15", "hrt", "hrt k=* b_at=4 *", "teacher", "beam 4", "bleu", -0.3, (1,)),
    ("#15", "hint_nart", "nat 9 lengths AT-rescored", "teacher", "beam 4", "bleu", -3.0, (1,)),
    ("#15", "imitate_nat", "nat 7 lengths AT-rescored", "dat", "beam 4", "bleu", -2.5, (1,)),
    ("#16", "hint_nart", "nat 9 lengths AT-rescored", "teacher", "beam 4", "speed", 1.5, (1,)),
    ("#16", "hint_nart", "nat 9 lengths AT-rescored", "teacher", "beam 4", "speed", 1.0, (32,)),
    ("#16", "imitate_nat", "nat 7 lengths AT-rescored", "dat", "beam 4", "speed", 1.5, (1,)),
    # The same NAT decodings with repeats collapsed (benchmark --collapse_repeats; no paper's).
    ("#15", "hint_nart", "nat 9 lengths AT-rescored collapsed", "teacher", "beam 4", "bleu",
     -3.0, (1,)),
    ("#15", "imitate_nat", "nat 7 lengths AT-rescored collapsed", "dat", "beam 4", "bleu", -2.5,
     (1,)),
    ("#16", "hint_nart", "nat 9 lengths AT-rescored collapsed", "teacher", "beam 4", "speed",
     1.5, (1,)),
    ("#16", "hint_nart", "nat 9 lengths AT-rescored collapsed", "teacher", "beam 4", "speed",
     1.0, (32,)),
    ("#16", "imitate_nat", "nat 7 lengths AT-rescored collapsed", "dat", "beam 4", "speed", 1.5,
     (1,)),
    ("#16", "hrt", "hrt k=* b_at=4 *", "teacher", "beam 4", "speed", 1.5, (1, 8, 16, 32)),
    ("#16", "cmlm", "mask-predict I=4 *", "teacher", "beam 5", "speed", 1.0, (1, 8, 16, 32)),
)

# The imitation target of the frontier issue, on configs/multi30k_ablation_benchmark.sh's
# results/ablations_imitate_nat_*.json (equal budgets, batch 32): against the paper's
# competitor, the learner without imitation module (imitate_nat_plain), then against the
# learner that keeps the modules and loses L_IL alone (imitate_nat_soft).
ABLATION_TARGETS = tuple(
    ("#15", "imitate_nat", decoding, without, decoding, "bleu", 1.0, (32,))
    for without in ("imitate_nat_plain", "imitate_nat_soft")
    for decoding in ("nat 1 length", "nat 7 lengths AT-rescored"))

# The shortlist target of the CTranslate2 and low-precision issue: a decoding over the lexical
# shortlist costs at most 0.2 BLEU against the same decoding over the full vocabulary.
SHORTLIST_BOUND = -0.2


def shortlist_targets(rows):
    """A #17 target for each run, decoding and batch a benchmark timed both with and without
    the shortlist (benchmark --shortlist: decodings "<decoding> shortlist"; the benchmark's
    names have no fnmatch wildcards, so each pattern matches that decoding alone)."""
    out = {}
    for r in rows:
        if r.get("decoding", "").endswith(" shortlist"):  # (older files name none)
            key = (r["run"], r["decoding"])
            out.setdefault(key, set()).add(r["batch"])
    return [("#17", run, decoding, run, decoding[:-len(" shortlist")], "bleu", SHORTLIST_BOUND,
             tuple(sorted(batches))) for (run, decoding), batches in out.items()]


def assemble(files):
    """[(path, benchmark values)] of row files (configs/multi30k_frontier.sh times the teacher
    alone, then each run beside the teacher as it converges, maybe on another machine) -> one
    list of rows whose speed is relative: sentences_per_second holds the row's alpha (its own
    file's teacher beam time over its time, same batch size), and "file" its file. The teacher's
    rows come from its own file, else from the first that has them; a run timed beside another
    (the DAT beside imitate-NAT, whose targets it sets) shows the rows of its own file
    (<run>.json) where there is one."""
    def teacher_only(item):
        return {r["run"] for r in item[1]["rows"]} == {"teacher"}

    def teacher_first(item):  # its own file, then one that times it alone
        return _stem(item[0]) != item[1]["reference_run"], not teacher_only(item)

    homes = {_stem(path) for path, _ in files}
    rows, teacher_file = [], None
    for path, values in sorted(files, key=teacher_first):
        for r in values["rows"]:
            if r.get("alpha") is None:
                continue
            if r["run"] == values["reference_run"]:
                if teacher_file not in (None, path):
                    continue
                teacher_file = path
            elif r["run"] != _stem(path) and r["run"] in homes:
                continue
            rows.append({**r, "sentences_per_second": r["alpha"], "file": path})
    return rows


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def file_target_rows(files, targets=TARGETS):
    """target_rows over row files (assemble): a target against the teacher is judged inside
    the file of its run, against that file's teacher (a teacher trained again on another
    machine is another model); one against another run (the DAT) too where that file timed it,
    else against that run's assembled rows; the no-domination target is judged on the assembled
    rows."""
    rows = assemble(files)
    out = []
    for target in targets:
        run, reference = target[1], target[3]
        timed = [path for path, values in files if any(r["run"] == run for r in values["rows"])]
        home = next((path for path in timed if _stem(path) == run), timed[0] if timed else None)
        chosen = [] if home is None else [
            r for r in dict(files)[home]["rows"] if r.get("alpha") is not None]
        if home is not None and not any(r["run"] == reference for r in chosen):
            # Across files only alphas compare (each against its own file's teacher); in one
            # file the measured speeds do, unrounded.
            chosen = [{**r, "sentences_per_second": r["alpha"]} for r in chosen]
            chosen += [r for r in rows if r["run"] == reference]
        out += target_rows(chosen, [target], domination=False)
    return out + target_rows(rows, (), domination=True)


def _find(batch_points, run, pattern):
    found = [p for p in batch_points if p[0] == run and fnmatch.fnmatchcase(p[1], pattern)]
    return found[0] if found else None


def pass_spread(rows, batch, a, b):
    """' (passes 1.40–1.52)': the range of the speed ratio pass by pass of the rows of points a
    and b at `batch` (pass i of each: the same round of benchmark --rounds), when both were
    timed in one file with the same number of passes, at least two; else ''."""
    def row(point):
        return max((r for r in rows if r.get("bleu") is not None and r["batch"] == batch
                    and (r["run"], r["decoding"]) == point[:2]),
                   key=lambda r: r["sentences_per_second"])

    mine, theirs = row(a), row(b)
    passes = mine.get("pass_seconds") or [], theirs.get("pass_seconds") or []
    if (len(passes[0]) < 2 or len(passes[0]) != len(passes[1])
            or mine.get("file") != theirs.get("file")):
        return ""
    ratios = [t / m for m, t in zip(*passes)]
    return f" (passes {min(ratios):.2f}–{max(ratios):.2f})"


def target_rows(rows, targets=TARGETS, domination=True):
    """[(issue, target, batch, measured, verdict)] for every target of `targets` and, with
    domination, the no-domination target (#15: no seed method slower and worse than the 6-1 or
    12-1 AT, at batch 1 and 32). A speed is the ratio of the fastest passes, with the range of
    the pass-by-pass ratios beside it (pass_spread)."""
    by_batch = points(rows)
    out = []
    for issue, run, decoding, ref, ref_decoding, kind, bound, batches in targets:
        what = "BLEU −" if kind == "bleu" else "speed /"
        target = f"{run} ({decoding}) {what} {ref} ({ref_decoding}) ≥ {bound:g}"
        for batch in batches:
            a = _find(by_batch.get(batch, []), run, decoding)
            b = _find(by_batch.get(batch, []), ref, ref_decoding)
            if a is None or b is None:
                out.append((issue, target, batch, "-", "not measured"))
                continue
            value = round(a[3] - b[3], 2) if kind == "bleu" else round(a[2] / b[2], 2)
            verdict = "met" if value >= bound else f"missed by {bound - value:.2f}"
            out.append((issue, target, batch, f"{value:+.2f}" if kind == "bleu" else
                        f"{value:.2f}×{pass_spread(rows, batch, a, b)}", verdict))
    for batch in (1, 32) if domination else ():
        if batch not in by_batch:
            out.append(("#15", "no method dominated by at_6-1 or at_12-1", batch, "-",
                        "not measured"))
            continue
        found = dominated(by_batch[batch])
        out.append(("#15", "no method dominated by at_6-1 or at_12-1", batch,
                    ", ".join(f"{p[0]} ({p[1]}) by {q[0]}" for p, q in found) or "none",
                    "missed" if found else "met"))
    return out


TARGET_COLUMNS = ["issue", "target", "batch", "measured", "verdict"]


def target_lines(rows, targets=TARGETS, domination=True):
    """target_rows as a markdown table."""
    return markdown_table(TARGET_COLUMNS, target_rows(rows, targets, domination))


def plot(rows, path, xlabel="sentences / s"):
    """BLEU against speed (log scale, labelled `xlabel`), one panel per batch size, two panels a
    line; the Pareto front is a line. Each run has a colour (baselines squares, methods circles)
    and each of its decodings a number, the same in every panel, keyed in one legend beside the
    panels (text beside every point overlaps where rows cluster). Returns the (closed) figure."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot, ticker

    by_batch = points(rows)
    order = {name: i for i, name in enumerate(BASELINES + METHODS)}
    keys = sorted({(p[0], p[1] or "") for batch_points in by_batch.values() for p in batch_points},
                  key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    number = {key: i + 1 for i, key in enumerate(keys)}
    runs = list(dict.fromkeys(run for run, _ in keys))
    colour = {run: pyplot.get_cmap("tab10")(i % 10) for i, run in enumerate(runs)}
    columns = min(2, len(by_batch))
    lines = math.ceil(len(by_batch) / columns)
    figure, axes = pyplot.subplots(lines, columns, figsize=(5.5 * columns, 4.2 * lines),
                                   squeeze=False)
    panels = list(axes.flat)
    for ax in panels[len(by_batch):]:
        ax.remove()
    handles = {}
    for ax, (batch, batch_points) in zip(panels, by_batch.items()):
        front = pareto_front(batch_points)
        handles["Pareto front"] = ax.plot([p[2] for p in front], [p[3] for p in front],
                                          color="tab:red", lw=1, zorder=2)[0]
        for run, decoding, speed, bleu in batch_points:
            key = (run, decoding or "")
            dot = ax.scatter([speed], [bleu], marker="s" if run in BASELINES else "o", s=28,
                             color=colour[run], zorder=3)
            handles.setdefault(key, dot)
            ax.annotate(str(number[key]), (speed, bleu), fontsize=7, xytext=(3, 2),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=2))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(f"batch {batch}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
    labels = [f"{number[key]}  {key[0]}" + (f": {key[1]}" if key[1] else "") for key in keys]
    figure.legend([handles[key] for key in keys] + [handles["Pareto front"]],
                  labels + ["Pareto front"], loc="center left", bbox_to_anchor=(1.0, 0.5),
                  fontsize=8, frameon=False)
    save_figure(figure, path)
    return figure
