"""Decoding speed and quality of several runs on the same sentences, one row per setting."""

import dataclasses
import json
import multiprocessing
import os
import time
from concurrent import futures

import sacrebleu
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.errors import UserError
from tfnmt.core.progress import Progress
from tfnmt.core.provenance import peak_rss_mb
from tfnmt.data import shortlist as shortlist_lib
from tfnmt.decoding.parallel import SELECTIONS
from tfnmt.evaluation.analysis import markdown_table, repeated_token_rate, timing_fields
from tfnmt.evaluation.side_by_side import ctranslate2_rows
from tfnmt.inference.translator import load_rescorer, resolve_method, Translator
from tfnmt.models import fingerprint


def parse_runs(values, default_checkpoint):
    """["name=dir@checkpoint", "dir", ...] -> [(name, dir, checkpoint)]."""
    parsed = []
    for value in values:
        name, _, path = value.rpartition("=")
        path, checkpoint = runs.split_checkpoint(path, default_checkpoint)
        parsed.append((name or path.rstrip("/").split("/")[-1], path, checkpoint))
    names = [p[0] for p in parsed]
    if len(set(names)) != len(names):
        raise UserError(f"--runs names must differ, got {', '.join(names)}.")
    for _, path, checkpoint in parsed:  # a wrong name fails now, not after the runs before it
        runs.find_checkpoint(runs.load(path), checkpoint)
    return parsed


def parse_nat_selection(values, names):
    """--nat_selection -> {run name: rule} (a run left out takes its method's rule): one rule
    for every run, or name=rule pairs."""
    if len(values) == 1 and values[0] in SELECTIONS:
        return dict.fromkeys(names, values[0])
    pairs = [value.partition("=") for value in values]
    bad = [value for value, (name, eq, rule) in zip(values, pairs)
           if not eq or name not in names or rule not in SELECTIONS]
    if bad:
        raise UserError(f"--nat_selection takes normalized or total, or name=normalized|total "
                        f"pairs naming --runs ({', '.join(names)}); got {', '.join(bad)}.")
    return {name: rule for name, _, rule in pairs}


def time_translation(translator, sentences, repeats):
    """One untimed pass over all sentences, then (seconds of each of `repeats` passes,
    translations); a row keeps the fastest and records them all, because passes of one
    program vary on a shared VM (measured: 10.7-14.2 s over six passes in one process,
    docs/decisions.md). The warm-up pass is whole, not one batch per compiled program: the
    first run of a data-dependent branch inside a program (HRT's and mask-predict's widths)
    costs extra (measured: a benchmark row of HRT at batch 1 took 5.18 s after a
    batch-per-shape warm-up, 4.17-4.21 s once every branch had run)."""
    translator.translate(sentences)
    passes, outputs = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = translator.translate(sentences)
        passes.append(time.perf_counter() - start)
    return passes, [n_best[0][0] for n_best in outputs]


def decode_settings(config, beam_sizes, iterations, halfwidths):
    """The rows one run contributes: a beam axis (autoregressive, hrt's Skip-AT beam), an
    iterations axis (mask_predict) or a length-halfwidth axis (nat)."""
    if config.method == "mask_predict":
        return [dataclasses.replace(config, iterations=i) for i in iterations]
    if config.method == "nat":  # collapse_repeats: each row also with repeats collapsed
        return [dataclasses.replace(config, length_halfwidth=h, collapse_repeats=c)
                for c in dict.fromkeys([False, config.collapse_repeats]) for h in halfwidths]
    config = dataclasses.replace(config, collapse_repeats=False)
    return [dataclasses.replace(config, beam_size=b) for b in beam_sizes]


def describe(config):
    if config.collapse_repeats:
        return f"{describe(dataclasses.replace(config, collapse_repeats=False))} collapsed"
    if config.shortlist:
        return f"{describe(dataclasses.replace(config, shortlist=False))} shortlist"
    if config.precision != "float32":
        return f"{describe(dataclasses.replace(config, precision='float32'))} {config.precision}"
    if config.method == "hrt":
        return f"hrt k={config.hrt_chunk} b_at={config.beam_size} b_nat={config.n_nat}"
    if config.method == "mask_predict":
        return f"mask-predict I={config.iterations} l={config.length_beam}"
    if config.method == "nat":
        if config.length_halfwidth == 0:
            return "nat 1 length"
        scorer = "AT-rescored" if config.rescore_run else "self-scored"
        return f"nat {2 * config.length_halfwidth + 1} lengths {scorer}"
    return "greedy" if config.beam_size == 1 else f"beam {config.beam_size}"


def file_tag(config):
    """The decoding in a file name: beam4, hrt2.beam5, mask_predict10, nat9.total."""
    if config.method == "nat":
        collapsed = ".collapsed" if config.collapse_repeats else ""
        return f"nat{2 * config.length_halfwidth + 1}.{config.nat_selection}{collapsed}"
    if config.method == "mask_predict":
        return f"mask_predict{config.iterations}"
    if config.method == "hrt":
        return f"hrt{config.hrt_chunk}.beam{config.beam_size}"
    return f"beam{config.beam_size}"


def xla_cell(xla):
    return "-" if xla is None else "on" if xla else "off"


def row_key(row):
    return row["run"], row["decoding"], row["xla"], row["batch"]


def time_run(spec, sentences, references, batch_sizes, beam_sizes, xla_modes, base_config,
             repeats, iterations, halfwidths, kept, ct2=((), ()), precisions=("float32",),
             shortlist=False, threads=0):
    """The rows of one run: every decoding setting, XLA mode and batch size, with `threads`
    intra-op threads (0: TensorFlow's default; set here, before this process's first tensor).
    Rows of `kept` (same key, same run directory and checkpoint) are reused untimed. ct2 =
    (compute types, thread counts): CTranslate2 rows too, for an autoregressive Transformer
    run."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    name, path, checkpoint = spec
    rows = []
    run = runs.load(path)
    model, ckpt = runs.restore_model(run, checkpoint)
    weights = fingerprint(model)
    models = {p: model if p == "float32" else runs.at_precision(model, p) for p in precisions}
    source_tok, target_tok = run.tokenizers()
    resolved = resolve_method(base_config, run)
    # Loaded once per run and precision (None unless a NAT run has rows with candidates to
    # rescore).
    rescorers = {p: load_rescorer(dataclasses.replace(resolved, precision=p,
                                                      length_halfwidth=max(halfwidths)), run)
                 for p in precisions}
    settings = [dataclasses.replace(s, precision=p) for p in precisions
                for s in decode_settings(resolved, beam_sizes, iterations, halfwidths)]
    lists = None
    if shortlist and resolved.method != "mask_predict":
        lists, lists_settings = shortlist_lib.load(path), shortlist_lib.settings(path)
        settings += [dataclasses.replace(s, shortlist=True) for s in settings]
    for setting in settings:
        model = models[setting.precision]
        for xla in xla_modes:
            for batch in batch_sizes:
                config = dataclasses.replace(setting, batch_size=batch, xla=xla)
                old = kept.get((name, describe(config), xla, batch))
                if old is not None:
                    if (old["run_dir"], old["checkpoint"]) != (path, ckpt):
                        raise UserError(f"--resume: the kept rows of {name} timed "
                                        f"{old['run_dir']} {old['checkpoint']}, not {path} "
                                        f"{ckpt}.")
                    rows.append(old)
                    print(f"kept {name} {old['decoding']} xla={xla} batch={batch}", flush=True)
                    continue
                used = rescorers[config.precision] if config.length_halfwidth > 0 else None
                translator = Translator(model, source_tok, target_tok, config,
                                        run.model.max_length, used, lists)
                passes, hyps = time_translation(translator, sentences, repeats)
                row = {"run": name, "run_dir": path, "checkpoint": ckpt, "weights": weights,
                       "decoding": describe(config), "method": config.method,
                       "precision": config.precision, "shortlist": config.shortlist,
                       "rescore_run": None if used is None else config.rescore_run,
                       "nat_selection": (config.nat_selection if config.method == "nat"
                                         and config.length_halfwidth > 0 else None),
                       "beam": (None if config.method in ("mask_predict", "nat")
                                else config.beam_size),
                       "xla": xla, "batch": batch,
                       "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                       **timing_fields(passes, len(sentences),
                                       sum(len(h.split()) for h in hyps))}
                if references:
                    row["bleu"] = round(sacrebleu.corpus_bleu(hyps, [references]).score, 2)
                    row["chrf"] = round(sacrebleu.corpus_chrf(hyps, [references]).score, 2)
                row["repeated_tokens_percent"] = round(repeated_token_rate(hyps), 2)
                if config.shortlist:
                    row["shortlist_settings"] = lists_settings
                row["peak_rss_mb"] = peak_rss_mb()  # this run's process so far
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()
                               if k not in ("run_dir", "checkpoint", "weights")), flush=True)
    if ct2[0] and run.model.architecture == "transformer" and resolved.method == "autoregressive":

        for row in ctranslate2_rows(run, checkpoint, name, sentences, references, batch_sizes,
                                    beam_sizes, base_config.length_penalty, *ct2, repeats):
            row["repeated_tokens_percent"] = None
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()
                           if k not in ("run_dir", "checkpoint")), flush=True)
    return rows


def benchmark(run_specs, sentences, references, batch_sizes, beam_sizes, xla_modes,
              base_config, repeats, iterations=(10,), halfwidths=(0,), kept=(), on_run=None,
              ct2=((), ()), precisions=("float32",), shortlist=False, threads=0,
              batch_threads=None, nat_selection=None, rounds=1):
    """Times every run in a child process of its own, one after the other; on_run(rows so
    far) follows each run. A child per run because TensorFlow never frees a compiled XLA
    program: each keeps ~300 memory mappings, and a process that compiles ~200 of them (a
    Table-10-sized invocation) passes Linux's default vm.max_map_count (65,530) and dies.
    The children time with `threads` intra-op threads, the batch sizes of `batch_threads`
    ({batch: [threads, ...]}) with theirs (a child per run and thread count); a row timed with
    several keeps the fastest (merge_round). With `rounds` > 1 the runs are timed that many
    times in turn (every run, then every run again, each time in new children), and a row
    keeps its fastest pass over all rounds: the machine's speed drifts over minutes, so rows
    timed at one moment each would carry it into alpha (docs/decisions.md). A kept row
    (--resume) is timed again only for the rounds it lacks. nat_selection ({run name: rule})
    overrides base_config's for those runs."""
    state = {row_key(r): r for r in kept}  # every row so far, its rounds merged
    order = {}  # run name -> its rows' keys, in output order
    context = multiprocessing.get_context("spawn")
    progress = Progress(len(run_specs) * rounds, "runs timed", every=0)
    groups = {}  # thread count -> its batch sizes, in the order of batch_sizes
    for batch in batch_sizes:
        for count in (batch_threads or {}).get(batch, [threads]):
            groups.setdefault(count, []).append(batch)
    done, rows = 0, []
    for round_number in range(1, rounds + 1):
        for spec in run_specs:
            reused = {key: r for key, r in state.items()
                      if key[0] == spec[0] and r.get("rounds", 1) >= round_number}
            run_rows = []
            for count, batches in groups.items():
                with futures.ProcessPoolExecutor(1, mp_context=context) as child:
                    config = dataclasses.replace(base_config, nat_selection=(
                        nat_selection or {}).get(spec[0], base_config.nat_selection))
                    job = child.submit(time_run, spec, sentences, references, batches,
                                       beam_sizes, xla_modes, config, repeats, iterations,
                                       halfwidths, reused, ct2, precisions, shortlist, count)
                    try:
                        run_rows += job.result()
                    except futures.process.BrokenProcessPool:
                        raise UserError(f"timing {spec[0]} crashed its process; the rows "
                                        "before it are saved, --resume continues from "
                                        "there.") from None
            state.update(merge_round([r for r in run_rows if row_key(r) not in reused], state))
            decodings = list(dict.fromkeys(r["decoding"] for r in run_rows))
            order[spec[0]] = sorted(dict.fromkeys(row_key(r) for r in run_rows), key=lambda k: (
                decodings.index(k[1]), [True, False, None].index(k[2]), batch_sizes.index(k[3])))
            rows = [state[key] for name, _, _ in run_specs for key in order.get(name, ())]
            if on_run:
                on_run(rows)
            done += 1
            progress(done)
    progress.done()
    return rows


def thread_passes(row):
    """{intra-op threads: [seconds of each timed pass]} of a merged row. Only rows of this
    code are merged: a kept file's rows get more rounds only if its settings name the same
    rounds > 1, which no file written before rows kept every pass does."""
    by_threads = row.get("pass_seconds_by_threads",
                         {str(row["intra_op_threads"]): row["pass_seconds"]})
    return {count: list(p) for count, p in by_threads.items()}


def merge_round(rows, earlier):
    """{key: row}: the rows of one round (a key timed with several thread counts has a row for
    each) merged with that key's row in `earlier` (the rounds before; {key: row}). A row is its
    fastest thread count's: that count's passes over every round so far (`pass_seconds`) and
    their fastest; with several counts `seconds_by_threads` holds each one's fastest and
    `pass_seconds_by_threads` its passes (each decoding at the thread count it runs best with,
    as a deployment would set it). Passes of other weights than the earlier rounds' are an
    error."""
    grouped = {}
    for r in rows:
        grouped.setdefault(row_key(r), []).append(r)
    merged = {}
    for key, group in grouped.items():
        old = earlier.get(key)
        passes = thread_passes(old) if old else {}
        newest = {}
        for r in group:
            if old and old.get("weights", r.get("weights")) != r.get("weights"):
                raise UserError(f"--resume: the kept rows of {r['run']} timed weights "
                                f"{old['weights']} ({old['run_dir']} {old['checkpoint']}), not "
                                f"{r['weights']} ({r['run_dir']} {r['checkpoint']}).")
            count = str(r.get("intra_op_threads"))
            passes[count] = passes.get(count, []) + list(r["pass_seconds"])
            newest[count] = r
        fastest = min(passes, key=lambda count: min(passes[count]))
        if fastest in newest:
            r = newest[fastest]
            row = {**r, **timing_fields(passes[fastest], r["sentences"], r["words"])}
        else:  # an earlier round's thread count stays the fastest: its row as it was
            row = dict(old)
        row["rounds"] = (old["rounds"] if old else 0) + 1
        row.pop("seconds_by_threads", None)
        row.pop("pass_seconds_by_threads", None)
        if len(passes) > 1:
            row["seconds_by_threads"] = {count: min(p) for count, p in passes.items()}
            row["pass_seconds_by_threads"] = passes
        merged[key] = row
    return merged


def metric_signatures():
    """sacreBLEU's signatures of the BLEU and chrF that benchmark rows report (its defaults,
    as sacrebleu.corpus_bleu / corpus_chrf compute them, against one reference)."""
    out = {}
    for name, metric in (("bleu", sacrebleu.metrics.BLEU()), ("chrf", sacrebleu.metrics.CHRF())):
        metric.corpus_score(["x"], [["x"]])  # a signature names the number of references
        out[f"{name}_signature"] = str(metric.get_signature())
    return out


def add_alpha(rows, reference_run, reference_beam):
    """alpha of every row against the reference run's float32 rows of the same batch size and
    XLA setting (CTranslate2 rows, which have none, against the XLA ones)."""
    base = {(r["batch"], r["xla"]): r["seconds"] for r in rows
            if r["run"] == reference_run and r["beam"] == reference_beam
            and r["method"] != "ctranslate2" and r.get("precision", "float32") == "float32"
            and not r.get("shortlist")}
    for r in rows:
        ref = base.get((r["batch"], True if r["xla"] is None else r["xla"]))
        r["alpha"] = round(ref / r["seconds"], 2) if ref else None
    return rows


def has_alpha(rows):
    """Whether any row has an alpha: a reference run without rows of the reference beam (a NAT
    decodes without one) leaves none, and its tables no alpha column."""
    return any(r["alpha"] is not None for r in rows)


def markdown(rows, reference_run, reference_beam):
    has_bleu = any("bleu" in r for r in rows)
    threads = any(r.get("intra_op_threads") for r in rows)  # a column when any row set them
    alpha = has_alpha(rows)
    head = ["run", "decoding", "XLA", "batch"] + (["threads"] if threads else []) + [
        "time (s)", "sent/s", "words/s"] + (
        [f"alpha vs {reference_run} beam {reference_beam}"] if alpha else [])
    head += (["BLEU", "chrF2"] if has_bleu else []) + ["repeated tokens (%)"]
    table = []
    for r in rows:
        cells = [r["run"], r["decoding"], xla_cell(r["xla"]), r["batch"]]
        if threads:  # 0: TensorFlow's default (every core)
            cells.append(r.get("intra_op_threads") or (
                "default" if r["method"] != "ctranslate2" else ""))
        cells += [r["seconds"], r["sentences_per_second"], r["words_per_second"]]
        if alpha:
            cells.append("" if r["alpha"] is None else f"{r['alpha']:.2f}")
        if has_bleu:
            cells += [r.get("bleu", ""), r.get("chrf", "")]
        cells.append("" if r["repeated_tokens_percent"] is None else r["repeated_tokens_percent"])
        table.append(cells)
    return "\n".join(markdown_table(head, table)) + "\n"


def by_batch_markdown(rows, reference_run, reference_beam):
    """The same rows one line per decoding (the layout of the HRT paper's Table 10): BLEU, then
    time and alpha at each batch size."""
    batches = sorted({r["batch"] for r in rows})
    first = {}  # (run, decoding, xla) -> its first row, in row order
    for r in rows:
        first.setdefault((r["run"], r["decoding"], r["xla"]), r)
    cell = {(r["run"], r["decoding"], r["xla"], r["batch"]): r for r in rows}
    names = ("time (s)", "alpha") if has_alpha(rows) else ("time (s)",)
    head = ["run", "decoding", "XLA", "BLEU", "chrF2"] + [
        f"{name} b={b}" for b in batches for name in names]
    table = []
    for (run, decoding, xla), row in first.items():
        cells = [run, decoding, xla_cell(xla), row.get("bleu", ""), row.get("chrf", "")]
        for b in batches:
            r = cell.get((run, decoding, xla, b))
            cells += [""] * len(names) if r is None else [
                r["seconds"], "" if r["alpha"] is None else f"{r['alpha']:.2f}"][:len(names)]
        table.append(cells)
    lines = [f"alpha vs {reference_run} beam {reference_beam} at the same batch size:"
             if len(names) == 2 else
             f"Time at each batch size (no alpha: {reference_run} has no beam {reference_beam} "
             "rows):", ""]
    return "\n".join(lines + markdown_table(head, table)) + "\n"


def previous_rows(output, settings):
    """The rows of an earlier invocation's <output>.json, if it used the same settings."""
    path = (output or "") + ".json"
    if not output or not os.path.exists(path):
        raise UserError(f"--resume needs an existing --output, {path} does not exist.")
    with open(path, encoding="utf-8") as f:
        values = json.load(f)["values"]
    differ = [k for k, v in settings.items() if values.get(k) != v]
    if differ:
        raise UserError(f"--resume: {path} was measured with other {', '.join(differ)}; "
                        "choose another --output.")
    return values["rows"]
