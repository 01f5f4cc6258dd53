"""Training records: what a run directory says of its training, kept by tfnmt.report."""

import json
import pathlib
import shutil

from tests.conftest import REPO, run_module
from tfnmt.runs import records

FROZEN = pathlib.Path(REPO) / "tests" / "fixtures" / "frozen_runs" / "transformer"


def make_run(path, scores, segments, patience=3):
    """A copy of a frozen run with hand-written validations (greedy BLEU = score) and
    training processes."""
    shutil.copytree(FROZEN, path, ignore=shutil.ignore_patterns("checkpoints"), dirs_exist_ok=True)
    config = json.loads((path / "config.json").read_text())
    config["train"]["patience"] = patience
    (path / "config.json").write_text(json.dumps(config))
    history = [{"step": 500 * (i + 1), "score": s, "bleu": s, "nll": 3.0 - i / 10}
               for i, s in enumerate(scores)]
    (path / "validation.json").write_text(json.dumps(history))
    (path / "training.json").write_text(json.dumps(
        [{"from_step": a, "to_step": b, "wall_seconds": w, "command": f"train {a}"}
         for a, b, w in segments]))
    return path


def test_record_by_hand(tmp_path):
    run = make_run(tmp_path / "r", [10.0, 20.0, 19.0, 20.0, 18.0],
                   [(0, 1000, 600.0), (1000, 2500, 900.5)])
    record = records.training_record(str(run))
    assert record["run"] == "r" and record["steps"] == 2500
    assert record["wall_seconds"] == 1500.5 and len(record["processes"]) == 2
    assert record["best"] == {"step": 1000, "bleu": 20.0, "nll": 2.9}  # the first of the ties
    assert [v["bleu"] for v in record["validations"]] == [10.0, 20.0, 19.0, 20.0, 18.0]
    assert record["converged"]  # 19, 20, 18: none beats 20
    assert record["model"].startswith("transformer ") and record["objective"] == "mle"
    assert not records.training_record(str(make_run(tmp_path / "s", [10.0, 20.0, 19.0],
                                                     [(0, 1500, 1.0)])))["converged"]


def test_no_convergence_while_the_objective_still_changes():
    """The validations of session 52's HRT run (greedy val at 3,000 ... 6,000 of a curriculum
    of T = 8,000): the patience rule stopped it at 6,000. It counts only validations from the
    curriculum's end on: none before T, then three without beating 38.24 from T on."""
    from tfnmt.core.config import TrainConfig
    from tfnmt.methods import hrt

    scores = [37.42, 36.63, 36.67, 38.24, 37.58, 37.71, 38.08]
    history = [{"step": 3000 + 500 * i, "score": s} for i, s in enumerate(scores)]
    assert records.converged(history, 3)  # the rule as it was: stopped at 6,000
    train = TrainConfig(patience=3, settings=hrt.Settings(curriculum_steps=8000))
    assert records.patience_from(train) == 8000
    assert not records.converged(history, 3, records.patience_from(train))
    later = history + [{"step": 6500 + 500 * i, "score": s}
                       for i, s in enumerate([37.9, 38.0, 38.1, 38.2, 38.0])]   # to 8,500
    assert not records.converged(later, 3, 8000)  # 7,500 is before T
    later.append({"step": 9000, "score": 38.1})
    assert records.converged(later, 3, 8000)      # 8,000, 8,500, 9,000: none beats 38.24
    assert records.patience_from(TrainConfig(patience=3)) == 0  # no method settings


def test_merge_replaces_and_keeps_runs_by_name():
    old = [{"run": "b", "steps": 1}, {"run": "a", "steps": 1}]
    merged = records.merge(old, [{"run": "b", "steps": 2}, {"run": "c", "steps": 3}])
    assert merged == [{"run": "a", "steps": 1}, {"run": "b", "steps": 2}, {"run": "c", "steps": 3}]


def test_report_keeps_the_records_of_runs_that_are_gone(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs / "teacher", [30.0, 31.5], [(0, 1000, 100.0)])
    make_run(runs / "student", [20.0], [(0, 500, 50.0)])
    results, output = tmp_path / "results", tmp_path / "docs" / "results.md"
    args = [f"--results={results}", f"--output={output}", "--trainings=trainings_x"]
    first = run_module("tfnmt.report", f"--record_runs={runs}/*", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    shutil.rmtree(runs / "teacher")
    make_run(runs / "student", [20.0, 25.0], [(0, 500, 50.0), (500, 1000, 60.0)])
    second = run_module("tfnmt.report", f"--record_runs={runs}/student", *args)
    assert second.returncode == 0, second.stderr[-2000:]
    kept = json.loads((results / "trainings_x.json").read_text())
    assert kept["kind"] == "trainings"
    assert [(r["run"], r["steps"]) for r in kept["values"]["runs"]] == [("student", 1000),
                                                                       ("teacher", 1000)]
    text = output.read_text()
    assert "| teacher | transformer" in text and "31.50 (1000)" in text
    assert "`student`: 500: 20.00, 1000: 25.00; `train 0`, `train 500`" in text
    assert (results / "trainings_x.png").stat().st_size > 0
    bad = run_module("tfnmt.report", f"--record_runs={tmp_path / 'nothing'}", *args)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "is not a tfnmt run directory" in bad.stderr.strip().splitlines()[-1]


def test_merge_keeps_a_record_that_another_training_of_the_same_name_replaces():
    first = [{"from_step": 0, "to_step": 500, "ended": "2026-12-01T10:00:00Z"}]
    old = [{"run": "t", "steps": 500, "processes": first}]
    resumed = {"run": "t", "steps": 900, "processes": first + [
        {"from_step": 500, "to_step": 900, "ended": "2026-12-01T12:00:00Z"}]}
    assert records.merge(old, [resumed]) == [resumed]  # the same training, resumed
    again = {"run": "t", "steps": 100, "processes": [
        {"from_step": 0, "to_step": 100, "ended": "2026-12-02T13:00:00Z"}]}
    assert records.merge(old, [again]) == [again, {**old[0], "run": "t@2026-12-01"}]
    # Recording the new training again keeps one copy of the old.
    assert records.merge(records.merge(old, [again]), [again]) == [again, {**old[0],
                                                                           "run": "t@2026-12-01"}]
    # A third training the day after the second: the second, ended on a day that already names
    # a kept record, is kept under its time, not dropped.
    third = {"run": "t", "steps": 50, "processes": [
        {"from_step": 0, "to_step": 50, "ended": "2026-12-02T20:00:00Z"}]}
    same_day = {**again, "processes": [{**again["processes"][0], "ended": "2026-12-01T23:00:00Z"}]}
    kept = records.merge(old, [same_day])
    assert records.merge(kept, [third]) == [
        third, {**old[0], "run": "t@2026-12-01"}, {**same_day, "run": "t@2026-12-01T23:00:00"}]


def test_the_val_curve_plot_draws_a_replaced_training_in_its_runs_colour_dashed(tmp_path):
    from tfnmt.evaluation import trainings

    def record(run, scores):
        return {"run": run, "validations": [{"step": 500 * (i + 1), "bleu": s}
                                            for i, s in enumerate(scores)]}

    figure = trainings.plot([record("teacher", [30.0, 31.0]), record("teacher@2026-12-01", [29.0]),
                             record("student", [20.0])], str(tmp_path / "curves.png"))
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    assert list(lines) == ["teacher", "teacher@2026-12-01", "student"]
    assert lines["teacher"].get_color() == lines["teacher@2026-12-01"].get_color()
    assert lines["teacher"].get_color() != lines["student"].get_color()
    assert [lines[n].get_linestyle() for n in lines] == ["-", "--", "-"]
    assert list(lines["teacher"].get_xdata()) == [500, 1000]
