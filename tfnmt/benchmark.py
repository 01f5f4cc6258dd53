"""Times decoding of trained runs on the same sentences, in one invocation:
python -m tfnmt.benchmark --runs=teacher=runs/a@averaged,student=runs/b --reference_run=teacher \\
    --source=test.en [--reference=test.de] --batch_sizes=1,8,16,32 --beam_sizes=1,4 --xla=both \\
    --output=results/benchmark_name   (writes .json and .md) [--resume]

alpha = time(reference run, reference beam, same batch size and XLA setting) / time(row).
Compilation is excluded: every distinct batch shape is decoded once before timing.
Each run is timed in a child process of its own (see `benchmark`). The output is rewritten
(atomically) after every run and marked "complete": false until the last, so a crash loses one
run's rows; --resume keeps the rows of such a file and times the rest.
"""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import dataclasses
import json
import multiprocessing
import os
import time
from concurrent import futures

import sacrebleu
from absl import flags

from tfnmt import runs
from tfnmt.analysis import repeated_token_rate
from tfnmt.config import DecodeConfig
from tfnmt.data import corpus
from tfnmt.errors import UserError, run_main
from tfnmt.inference import Translator, load_rescorer, resolve_method
from tfnmt.progress import Progress
from tfnmt.provenance import peak_rss_mb, write_result

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "name=run_dir[@checkpoint] (or run dirs; the name is the base "
                  "name; the checkpoint defaults to --checkpoint).")
flags.DEFINE_string("reference_run", None, "Name of the run alpha is measured against (default: first).")
flags.DEFINE_integer("reference_beam", 4, "Beam of the reference run's rows alpha divides by.")
flags.DEFINE_string("checkpoint", "best", "best, latest or averaged.")
flags.DEFINE_string("source", None, "Sentences to translate.")
flags.DEFINE_string("reference", None, "Optional references: adds BLEU per row.")
flags.DEFINE_integer("num_sentences", 0, "Use the first N sentences (0: all).")
flags.DEFINE_list("batch_sizes", ["1", "8", "16", "32"], "Batch sizes.")
flags.DEFINE_list("beam_sizes", ["1", "4"], "Beam sizes.")
flags.DEFINE_enum("xla", "both", ["on", "off", "both"], "Time with jit_compile, without, or both.")
flags.DEFINE_float("length_penalty", 0.6, "GNMT length-penalty alpha.")
flags.DEFINE_enum("method", "auto", ["auto", "autoregressive", "hrt", "mask_predict", "nat"],
                  "Decoding of every run: auto picks each run's own (hrt, mask_predict, nat or "
                  "beam).")
flags.DEFINE_integer("hrt_chunk", 0, "hrt: chunk size k (0: each run's).")
flags.DEFINE_integer("n_nat", 1, "hrt: Skip-AT hypotheses completed by Skip-CMLM.")
flags.DEFINE_list("iterations", ["10"], "mask_predict runs: refinement passes, one row each.")
flags.DEFINE_integer("length_beam", 5, "mask_predict: length candidates.")
flags.DEFINE_list("length_halfwidths", ["0"], "nat runs: halfwidths B (2B+1 lengths), one row each.")
flags.DEFINE_string("rescore_run", "", "nat runs: AT run that rescores the length candidates.")
flags.DEFINE_string("rescore_checkpoint", "best", "nat runs: the rescoring run's checkpoint.")
flags.DEFINE_enum("nat_selection", "normalized", ["normalized", "total"],
                  "nat runs: pick the candidate with the best length-normalised or total "
                  "log-probability.")
flags.DEFINE_integer("repeats", 1, "Timed passes per row (the fastest is kept).")
flags.DEFINE_bool("shortlist", False, "Also time every autoregressive setting over each run's "
                  "lexical shortlist (python -m tfnmt.shortlist).")
flags.DEFINE_list("precisions", ["float32"], "Weights and matmuls at decode time "
                  "(float32, bfloat16, int8; see translate --precision): rows for each.")
flags.DEFINE_string("output", None, "Output prefix: writes <output>.json and <output>.md "
                    "after every run.")
flags.DEFINE_bool("resume", False, "Keep the rows already in <output>.json (same settings) and "
                  "time only the missing ones.")
flags.DEFINE_enum("mode", "speed", ["speed", "breakdown", "ctranslate2"],
                  "speed: time real sentences; breakdown: time per decoder component on pseudo "
                  "sentences decoded to one length (Table 1 of the Hybrid paper); ctranslate2: "
                  "tfnmt beside CTranslate2 on random weights of --shapes, outputs of forced "
                  "length (no runs needed; tfnmt.side_by_side).")
flags.DEFINE_list("shapes", ["small", "base", "12-1"], "ctranslate2 mode: model shapes.")
flags.DEFINE_list("ct2_compute_types", [],
                  "CTranslate2 compute types (e.g. float32,int8): speed mode adds CTranslate2 "
                  "rows for every autoregressive Transformer run (its checkpoint converted); "
                  "ctranslate2 mode defaults to float32,int8.")
flags.DEFINE_list("ct2_threads", ["1", "2"], "CTranslate2 intra-op threads, a row each.")
flags.DEFINE_integer("pseudo_sentences", 1000, "Breakdown: number of pseudo sentences.")
flags.DEFINE_integer("pseudo_length", 20, "Breakdown: source and target length (tokens).")
flags.DEFINE_integer("breakdown_beam", 8, "Breakdown: beam size.")
flags.DEFINE_integer("breakdown_batch", 1, "Breakdown: sentences per batch.")


def parse_runs(values, default_checkpoint):
    """["name=dir@checkpoint", "dir", ...] -> [(name, dir, checkpoint)]."""
    parsed = []
    for value in values:
        name, _, path = value.rpartition("=")
        path, _, checkpoint = path.partition("@")
        parsed.append((name or path.rstrip("/").split("/")[-1], path,
                       checkpoint or default_checkpoint))
    names = [p[0] for p in parsed]
    if len(set(names)) != len(names):
        raise UserError(f"--runs names must differ, got {', '.join(names)}.")
    return parsed


def time_translation(translator, sentences, repeats):
    """Warms every batch shape up, then returns (best seconds, translations)."""
    seen = set()
    for _, source in translator.batches(translator.encode(sentences)):
        if source.shape not in seen:
            seen.add(source.shape)
            translator.translate_ids(source)
    best, outputs = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = translator.translate(sentences)
        best = min(best, time.perf_counter() - start)
    return best, [n_best[0][0] for n_best in outputs]


def decode_settings(config, beam_sizes, iterations, halfwidths):
    """The rows one run contributes: a beam axis (autoregressive, hrt's Skip-AT beam), an
    iterations axis (mask_predict) or a length-halfwidth axis (nat)."""
    if config.method == "mask_predict":
        return [dataclasses.replace(config, iterations=i) for i in iterations]
    if config.method == "nat":
        return [dataclasses.replace(config, length_halfwidth=h) for h in halfwidths]
    return [dataclasses.replace(config, beam_size=b) for b in beam_sizes]


def describe(config):
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


def xla_cell(xla):
    return "-" if xla is None else "on" if xla else "off"


def row_key(row):
    return row["run"], row["decoding"], row["xla"], row["batch"]


def time_run(spec, sentences, references, batch_sizes, beam_sizes, xla_modes, base_config,
             repeats, iterations, halfwidths, kept, ct2=((), ()), precisions=("float32",),
             shortlist=False):
    """The rows of one run: every decoding setting, XLA mode and batch size. Rows of `kept`
    (same key, same run directory and checkpoint) are reused untimed. ct2 = (compute types,
    thread counts): CTranslate2 rows too, for an autoregressive Transformer run."""
    name, path, checkpoint = spec
    rows = []
    run = runs.load(path)
    model, ckpt = runs.restore_model(run, checkpoint)
    models = {p: model if p == "float32" else runs.at_precision(model, p) for p in precisions}
    source_tok, target_tok = run.tokenizers()
    resolved = resolve_method(base_config, run)
    # Loaded once per run (None unless a NAT run has rows with candidates to rescore).
    rescorer = load_rescorer(dataclasses.replace(resolved, length_halfwidth=max(halfwidths)), run)
    settings = [dataclasses.replace(s, precision=p) for p in precisions
                for s in decode_settings(resolved, beam_sizes, iterations, halfwidths)]
    lists = None
    if shortlist and resolved.method == "autoregressive":
        from tfnmt.data import shortlist as shortlist_lib

        lists = shortlist_lib.load(path)
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
                used = rescorer if config.length_halfwidth > 0 else None
                translator = Translator(model, source_tok, target_tok, config,
                                        run.model.max_length, used, lists)
                seconds, hyps = time_translation(translator, sentences, repeats)
                words = sum(len(h.split()) for h in hyps)
                row = {"run": name, "run_dir": path, "checkpoint": ckpt,
                       "decoding": describe(config), "method": config.method,
                       "precision": config.precision, "shortlist": config.shortlist,
                       "rescore_run": None if used is None else config.rescore_run,
                       "beam": (None if config.method in ("mask_predict", "nat")
                                else config.beam_size),
                       "xla": xla, "batch": batch, "seconds": round(seconds, 3),
                       "sentences_per_second": round(len(sentences) / seconds, 2),
                       "words_per_second": round(words / seconds, 1)}
                if references:
                    row["bleu"] = round(sacrebleu.corpus_bleu(hyps, [references]).score, 2)
                row["repeated_tokens_percent"] = round(repeated_token_rate(hyps), 2)
                row["peak_rss_mb"] = peak_rss_mb()  # this run's process so far
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()
                               if k not in ("run_dir", "checkpoint")), flush=True)
    if ct2[0] and run.model.architecture == "transformer" and resolved.method == "autoregressive":
        from tfnmt.side_by_side import ctranslate2_rows

        for row in ctranslate2_rows(run, checkpoint, name, sentences, references, batch_sizes,
                                    beam_sizes, base_config.length_penalty, *ct2, repeats):
            row["repeated_tokens_percent"] = None
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()
                           if k not in ("run_dir", "checkpoint")), flush=True)
    return rows


def benchmark(run_specs, sentences, references, batch_sizes, beam_sizes, xla_modes,
              base_config, repeats, iterations=(10,), halfwidths=(0,), kept=(), on_run=None,
              ct2=((), ()), precisions=("float32",), shortlist=False):
    """Times every run in a child process of its own, one after the other; on_run(rows so
    far) follows each run. A child per run because TensorFlow never frees a compiled XLA
    program: each keeps ~300 memory mappings, and a process that compiles ~200 of them (a
    Table-10-sized invocation) passes Linux's default vm.max_map_count (65,530) and dies."""
    kept = {row_key(r): r for r in kept}
    rows = []
    context = multiprocessing.get_context("spawn")
    progress = Progress(len(run_specs), "runs timed", every=0)
    for spec in run_specs:
        with futures.ProcessPoolExecutor(1, mp_context=context) as child:
            job = child.submit(time_run, spec, sentences, references, batch_sizes, beam_sizes,
                               xla_modes, base_config, repeats, iterations, halfwidths, kept,
                               ct2, precisions, shortlist)
            try:
                rows += job.result()
            except futures.process.BrokenProcessPool:
                raise UserError(f"timing {spec[0]} crashed its process; the rows before it "
                                "are saved, --resume continues from there.") from None
        if on_run:
            on_run(rows)
        progress(len({r["run"] for r in rows}))
    progress.done()
    return rows


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


def markdown(rows, reference_run, reference_beam):
    has_bleu = any("bleu" in r for r in rows)
    head = ["run", "decoding", "XLA", "batch", "time (s)", "sent/s", "words/s",
            f"alpha vs {reference_run} beam {reference_beam}"] + (["BLEU"] if has_bleu else []) \
        + ["repeated tokens (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["run"], r["decoding"], xla_cell(r["xla"]), r["batch"], r["seconds"],
                 r["sentences_per_second"], r["words_per_second"],
                 "" if r["alpha"] is None else f"{r['alpha']:.2f}"]
        if has_bleu:
            cells.append(r.get("bleu", ""))
        cells.append("" if r["repeated_tokens_percent"] is None else r["repeated_tokens_percent"])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def by_batch_markdown(rows, reference_run, reference_beam):
    """The same rows one line per decoding (the layout of the HRT paper's Table 10): BLEU, then
    time and alpha at each batch size."""
    batches = sorted({r["batch"] for r in rows})
    first = {}  # (run, decoding, xla) -> its first row, in row order
    for r in rows:
        first.setdefault((r["run"], r["decoding"], r["xla"]), r)
    cell = {(r["run"], r["decoding"], r["xla"], r["batch"]): r for r in rows}
    head = ["run", "decoding", "XLA", "BLEU"] + [
        f"{name} b={b}" for b in batches for name in ("time (s)", "alpha")]
    lines = [f"alpha vs {reference_run} beam {reference_beam} at the same batch size:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (run, decoding, xla), row in first.items():
        cells = [run, decoding, xla_cell(xla), row.get("bleu", "")]
        for b in batches:
            r = cell.get((run, decoding, xla, b))
            cells += ["", ""] if r is None else [
                r["seconds"], "" if r["alpha"] is None else f"{r['alpha']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def breakdown_main():
    from tfnmt.breakdown import COMPONENTS, breakdown

    rows = []
    for name, path, checkpoint in parse_runs(FLAGS.runs, FLAGS.checkpoint):
        run = runs.load(path)
        model, ckpt = runs.restore_model(run, checkpoint)
        seconds = breakdown(model, FLAGS.pseudo_sentences, FLAGS.breakdown_batch,
                            FLAGS.pseudo_length, FLAGS.pseudo_length, FLAGS.breakdown_beam,
                            FLAGS.xla != "off")
        rows.append({"run": name, "run_dir": path, "checkpoint": ckpt,
                     **{k: round(v, 3) for k, v in seconds.items()}})
        print(rows[-1], flush=True)
    head = ["run", *COMPONENTS, "others", "total"]
    table = "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(str(r.get(c, "-")) for c in head) + " |" for r in rows]) + "\n"
    print(table)
    if FLAGS.output:
        values = {"rows": rows, "sentences": FLAGS.pseudo_sentences,
                  "length": FLAGS.pseudo_length, "beam": FLAGS.breakdown_beam,
                  "batch": FLAGS.breakdown_batch, "xla": FLAGS.xla != "off", "markdown": table}
        write_result(FLAGS.output + ".json", "breakdown", values)
        with open(FLAGS.output + ".md", "w", encoding="utf-8") as f:
            f.write(table)


def side_by_side_main():
    from tfnmt import side_by_side
    from tfnmt.ctranslate2_export import import_ctranslate2
    from tfnmt.config import SHAPES

    import_ctranslate2()
    unknown = [s for s in FLAGS.shapes if s not in SHAPES]
    if unknown:
        raise UserError(f"unknown --shapes {', '.join(unknown)}; choose from "
                        f"{', '.join(SHAPES)}.")
    try:
        batches = [int(b) for b in FLAGS.batch_sizes]
        beams = [int(b) for b in FLAGS.beam_sizes]
        threads = [int(t) for t in FLAGS.ct2_threads]
    except ValueError:
        raise UserError("--batch_sizes, --beam_sizes and --ct2_threads take comma-separated "
                        "integers.") from None
    if min(batches + beams + threads) < 1:
        raise UserError("batch sizes, beam sizes and thread counts must be positive.")
    output = FLAGS.output or "results/ctranslate2_side_by_side"
    corpus.check_output_path(output + ".json")
    cells = side_by_side.side_by_side(FLAGS.shapes, batches, beams,
                                      FLAGS.ct2_compute_types or ["float32", "int8"], threads,
                                      max(FLAGS.repeats, 3))
    table = side_by_side.markdown(cells)
    print(table)
    settings = {"source_tokens": side_by_side.SOURCE_TOKENS, "steps": side_by_side.STEPS,
                "vocab_size": side_by_side.VOCAB_SIZE, "tfnmt_decoding": "XLA",
                "repeats": max(FLAGS.repeats, 3)}
    write_result(output + ".json", "ctranslate2_side_by_side",
                 {**settings, "cells": cells, "markdown": table})
    corpus.write_atomic(output + ".md", table)
    print(f"wrote {output}.json and {output}.md")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if FLAGS.mode == "ctranslate2":
        return side_by_side_main()
    if FLAGS.mode == "breakdown":
        if not FLAGS.runs:
            raise UserError("--runs is required.")
        return breakdown_main()
    if not FLAGS.runs or not FLAGS.source:
        raise UserError("--runs and --source are required.")
    try:
        batch_sizes = [int(b) for b in FLAGS.batch_sizes]
        beam_sizes = [int(b) for b in FLAGS.beam_sizes]
        iterations = [int(i) for i in FLAGS.iterations]
        halfwidths = [int(h) for h in FLAGS.length_halfwidths]
    except ValueError:
        raise UserError("--batch_sizes, --beam_sizes, --iterations and --length_halfwidths "
                        "take comma-separated integers.") from None
    unknown = set(FLAGS.precisions) - set(runs.PRECISIONS)
    if unknown or not FLAGS.precisions:
        raise UserError(f"--precisions takes {', '.join(runs.PRECISIONS)}, got "
                        f"{', '.join(FLAGS.precisions)}.")
    if min(batch_sizes + beam_sizes + iterations) < 1 or min(halfwidths) < 0:
        raise UserError("batch sizes, beam sizes and iterations must be positive, halfwidths "
                        ">= 0.")
    specs = parse_runs(FLAGS.runs, FLAGS.checkpoint)
    reference_run = FLAGS.reference_run or specs[0][0]
    if reference_run not in [name for name, _, _ in specs]:
        raise UserError(f"--reference_run {reference_run!r} is not one of --runs.")
    if FLAGS.reference_beam not in beam_sizes:
        raise UserError(f"--reference_beam {FLAGS.reference_beam} is not one of --beam_sizes.")
    sentences = corpus.read_lines(FLAGS.source)
    references = corpus.read_lines(FLAGS.reference) if FLAGS.reference else None
    if references is not None and len(references) != len(sentences):
        raise UserError(f"{FLAGS.source} and {FLAGS.reference} differ in line count.")
    if FLAGS.num_sentences:
        sentences = sentences[: FLAGS.num_sentences]
        references = references[: FLAGS.num_sentences] if references else None
    xla_modes = {"on": [True], "off": [False], "both": [True, False]}[FLAGS.xla]
    base_config = DecodeConfig(length_penalty=FLAGS.length_penalty, method=FLAGS.method,
                               hrt_chunk=FLAGS.hrt_chunk, n_nat=FLAGS.n_nat,
                               length_beam=FLAGS.length_beam, rescore_run=FLAGS.rescore_run,
                               rescore_checkpoint=FLAGS.rescore_checkpoint,
                               nat_selection=FLAGS.nat_selection)
    settings = {"source": FLAGS.source, "reference": FLAGS.reference,
                "sentences": len(sentences), "reference_run": reference_run,
                "reference_beam": FLAGS.reference_beam, "length_penalty": FLAGS.length_penalty,
                "repeats": FLAGS.repeats, "rescore_run": FLAGS.rescore_run,
                "rescore_checkpoint": FLAGS.rescore_checkpoint,
                "nat_selection": FLAGS.nat_selection, "precisions": FLAGS.precisions,
                "shortlist": FLAGS.shortlist,
                "ct2_compute_types": FLAGS.ct2_compute_types}
    kept = previous_rows(FLAGS.output, settings) if FLAGS.resume else []

    def save(rows, complete=False):
        rows = add_alpha([dict(r) for r in rows], reference_run, FLAGS.reference_beam)
        table = markdown(rows, reference_run, FLAGS.reference_beam)
        if len({r["batch"] for r in rows}) > 1:
            table += "\n" + by_batch_markdown(rows, reference_run, FLAGS.reference_beam)
        if FLAGS.output:
            write_result(FLAGS.output + ".json", "benchmark",
                         {**settings, "rows": rows, "markdown": table, "complete": complete})
            corpus.write_atomic(FLAGS.output + ".md", table)
        return table

    try:
        ct2 = (FLAGS.ct2_compute_types, [int(t) for t in FLAGS.ct2_threads])
    except ValueError:
        raise UserError("--ct2_threads takes comma-separated integers.") from None
    if ct2[0]:
        from tfnmt.ctranslate2_export import import_ctranslate2

        import_ctranslate2()
    rows = benchmark(specs, sentences, references, batch_sizes, beam_sizes, xla_modes,
                     base_config, FLAGS.repeats, iterations, halfwidths, kept=kept,
                     on_run=save, ct2=ct2, precisions=FLAGS.precisions,
                     shortlist=FLAGS.shortlist)
    print(save(rows, complete=True))
    if FLAGS.output:
        print(f"wrote {FLAGS.output}.json and {FLAGS.output}.md")


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

if __name__ == "__main__":
    run_main(main)
