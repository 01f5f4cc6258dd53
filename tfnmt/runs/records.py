"""What a run directory says of its training: each process's steps and wall time
(training.json), every validation (validation.json) and the configuration (config.json).

`tfnmt.report --record_runs` keeps these records under results/, so a training's command, wall
time and val curve outlive the run directory (weights are not kept there)."""

import json
import os

from tfnmt.runs import load

SEGMENTS = "training.json"  # one entry per training process: from_step, to_step, wall_seconds...
VALIDATIONS = "validation.json"  # every validation: step, score, bleu, loss, nll


def read(run_dir, name, default):
    """The JSON file `name` of the run, or default when there is none."""
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def converged(history, patience, from_step=0):
    """True when `patience` validations in a row, all at step `from_step` or later, have not
    beaten the best before them."""
    if patience <= 0 or len(history) <= patience or history[-patience]["step"] < from_step:
        return False
    best_before = max(entry["score"] for entry in history[:-patience])
    return all(entry["score"] <= best_before for entry in history[-patience:])


def patience_from(train):
    """The first step whose validation counts towards convergence: where the run's objective
    stops changing (its method's Settings.stationary_from(), e.g. the end of HRT's
    curriculum), else 0. A score taken while the training mix still moves says nothing of
    convergence."""
    stationary_from = getattr(train.settings, "stationary_from", None)
    return stationary_from() if stationary_from else 0


def training_record(run_dir):
    """The run's training as one JSON-ready dict (UserError if run_dir is not a run; a
    config.json of any tfnmt version)."""
    run = load(run_dir)
    segments = read(run_dir, SEGMENTS, [])
    history = read(run_dir, VALIDATIONS, [])
    best = max(history, key=lambda e: e["score"]) if history else None
    m, train = run.model, run.train
    return {
        "run": os.path.basename(os.path.normpath(run_dir)),
        "model": f"{m.architecture} {m.encoder_layers}-{m.decoder_layers}, d {m.d_model}",
        "objective": train.objective,
        "target": run.data.train_distilled or run.data.train_target,
        "init_from": train.init_from,
        "teacher": train.teacher.run if train.teacher else "",
        "steps": max([s["to_step"] for s in segments] + [e["step"] for e in history] + [0]),
        "wall_seconds": round(sum(s["wall_seconds"] for s in segments), 1),
        "processes": segments,
        "validations": [{k: e[k] for k in ("step", "bleu", "nll") if k in e} for e in history],
        "best": {k: best[k] for k in ("step", "bleu", "nll") if k in best} if best else None,
        "patience": train.patience,
        "converged": converged(history, train.patience, patience_from(train)),
    }


def merge(old_records, new_records):
    """old_records with every run of new_records replaced or added (a run dir that is gone
    keeps its last record), ordered by run name. A record replaced by another training of the
    same name (its processes are not where the new record's start: the run was trained again,
    on a new machine say) is kept as "<run>@<date its last process ended>", or with the time
    too where another training of that name ended the same day."""
    by_run = {r["run"]: r for r in old_records}
    for record in new_records:
        old = by_run.get(record["run"])
        done = old.get("processes", []) if old else []
        if done and record.get("processes", [])[:len(done)] != done:
            ended = done[-1].get("ended", "unknown")
            for renamed in (f"{old['run']}@{ended[:10]}", f"{old['run']}@{ended[:19]}"):
                if by_run.get(renamed, {}).get("processes", done) == done:
                    break
            by_run.setdefault(renamed, {**old, "run": renamed})
        by_run[record["run"]] = record
    return [by_run[name] for name in sorted(by_run)]
