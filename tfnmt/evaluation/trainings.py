"""The training records of results/trainings*.json (tfnmt.runs.records) as a table and a plot
of the val curves."""

from tfnmt.core.progress import duration
from tfnmt.evaluation.analysis import save_figure

COLUMNS = ["run", "model", "objective", "trained on", "starts from", "steps", "processes",
           "wall", "best val BLEU (step)", "converged"]


def _base(path):
    return path.rstrip("/").rsplit("/", 1)[-1] if path else "-"


def table_row(record):
    best = record["best"]
    return [record["run"], record["model"], record["objective"], _base(record["target"]),
            _base(record["init_from"]), record["steps"], len(record["processes"]),
            duration(record["wall_seconds"]) if record["processes"] else "-",
            f"{best['bleu']:.2f} ({best['step']})" if best and "bleu" in best else "-",
            "yes" if record["converged"] else f"no (patience {record['patience']})"]


def curve_line(record):
    """`run`: step: BLEU, ... (the greedy val BLEU of every validation)."""
    points = ", ".join(f"{v['step']}: {v['bleu']:.2f}" for v in record["validations"]
                       if "bleu" in v)
    commands = sorted({p["command"] for p in record["processes"] if "command" in p})
    return (f"`{record['run']}`: {points or 'no validation yet'}"
            + (f"; `{'`, `'.join(commands)}`" if commands else ""))


def plot(records, path):
    """Greedy val BLEU against training step, a line per run: one colour per run name, its
    current training solid and the earlier ones it replaced (`<run>@<date>`) dashed and paler.
    Returns the (closed) figure."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = list(dict.fromkeys(record["run"].split("@")[0] for record in records))
    palette = pyplot.get_cmap("tab20" if len(names) > 10 else "tab10")
    colour = {name: palette(i % palette.N) for i, name in enumerate(names)}
    figure, ax = pyplot.subplots(figsize=(7, 4.5))
    for record in records:
        curve = [(v["step"], v["bleu"]) for v in record["validations"] if "bleu" in v]
        if curve:
            earlier = "@" in record["run"]
            ax.plot(*zip(*curve), marker=".", lw=0.8 if earlier else 1.4,
                    ls="--" if earlier else "-", alpha=0.55 if earlier else 1.0,
                    color=colour[record["run"].split("@")[0]], label=record["run"])
    ax.set_xlabel("training step")
    ax.set_ylabel("greedy val BLEU")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    save_figure(figure, path)
    return figure
