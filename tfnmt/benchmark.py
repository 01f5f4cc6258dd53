"""Times decoding of trained runs on the same sentences, in one invocation:
python -m tfnmt.benchmark --runs=teacher=runs/a@averaged,student=runs/b --reference_run=teacher \\
    --source=test.en [--reference=test.de] --batch_sizes=1,8,16,32 --beam_sizes=1,4 --xla=both \\
    --output=results/benchmark_name   (writes .json and .md) [--resume]

alpha = time(reference run, reference beam, same batch size and XLA setting) / time(row).
Compilation is excluded: every distinct batch shape is decoded once before timing.
Each run is timed in a child process of its own (see `benchmark`); --rounds=N times every run
N times in turn and keeps each row's fastest pass. The output is rewritten (atomically) after
every run and marked "complete": false until the last, so a crash loses one run's rows;
--resume keeps the rows of such a file and times the rest (and the rounds a row lacks).
"""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)


from absl import flags

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import run_main, UserError
from tfnmt.core.provenance import write_result
from tfnmt.data import corpus
from tfnmt.evaluation.analysis import markdown_table
from tfnmt.evaluation.benchmark import (add_alpha, benchmark, by_batch_markdown, markdown,
                                        metric_signatures, parse_nat_selection, parse_runs,
                                        previous_rows)

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "name=run_dir[@checkpoint] (or run dirs; the name is the base "
                  "name; the checkpoint defaults to --checkpoint).")
flags.DEFINE_string("reference_run", None, "Name of the run alpha is measured against (default: first).")
flags.DEFINE_integer("reference_beam", 4, "Beam of the reference run's rows alpha divides by.")
flags.DEFINE_string("checkpoint", "best", "best, latest, averaged, a checkpoint of the run "
                    "by name (ckpt-1500) or a checkpoint path.")
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
flags.DEFINE_string("rescore_run", None, "nat runs: AT run that rescores the length candidates "
                    "('': the NAT itself). Default: each run's teacher.")
flags.DEFINE_string("rescore_checkpoint", None, "nat runs: the rescoring run's checkpoint. "
                    "Default: the one each run's teacher was trained with, else best.")
flags.DEFINE_list("nat_selection", [], "nat runs: pick the candidate with the best "
                  "length-normalised or total log-probability: normalized or total for every "
                  "run, or name=normalized|total pairs per run (default: each run's method's, "
                  "see translate --nat_selection).")
flags.DEFINE_list("batch_threads", [], "batch:threads pairs, e.g. 1:1: the intra-op threads "
                  "of the rows at those batch sizes (the others use --intra_op_threads; one "
                  "child process per run and thread count). A batch size given several "
                  "(1:1,1:2) is timed with each and every row keeps its fastest.")
flags.DEFINE_integer("repeats", 1, "Timed passes per row (the fastest is kept).")
flags.DEFINE_integer("rounds", 1, "Time every run this many times in turn, each time in new "
                     "processes (--repeats passes each); a row keeps its fastest pass over all "
                     "rounds, so the machine's drift reaches every run alike.")
flags.DEFINE_bool("shortlist", False, "Also time every setting but mask_predict over each "
                  "run's lexical shortlist (python -m tfnmt.shortlist).")
flags.DEFINE_bool("collapse_repeats", False, "Also time every nat setting with each "
                  "candidate's repeated consecutive tokens kept once (translate "
                  "--collapse_repeats).")
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
flags.DEFINE_list("tfnmt_configs", ["float32_xla", "int8_xla", "bfloat16_plain",
                                    "float32_xla_1thr", "int8_xla_1thr"],
                  "ctranslate2 mode: tfnmt's decoding configurations timed in every cell "
                  "(precision_xla or precision_plain; _1thr: one intra-op thread); a cell "
                  "compares the fastest.")
flags.DEFINE_integer("pseudo_sentences", 1000, "Breakdown: number of pseudo sentences.")
flags.DEFINE_integer("pseudo_length", 20, "Breakdown: source and target length (tokens).")
flags.DEFINE_integer("breakdown_beam", 8, "Breakdown: beam size.")
flags.DEFINE_integer("breakdown_batch", 1, "Breakdown: sentences per batch.")


def breakdown_main():
    from tfnmt.evaluation.breakdown import COMPONENTS, breakdown

    for name in ("pseudo_sentences", "pseudo_length", "breakdown_beam", "breakdown_batch"):
        if getattr(FLAGS, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(FLAGS, name)}.")
    if FLAGS.output:
        corpus.check_output_path(FLAGS.output + ".json")
    rows = []
    for name, path, checkpoint in parse_runs(FLAGS.runs, FLAGS.checkpoint):
        run = runs.load(path)
        if run.model.architecture not in ("transformer", "dat", "hybrid", "rnmt"):
            raise UserError(f"the breakdown times autoregressive beam search; {path} is a "
                            f"{run.model.architecture} run.")
        model, ckpt = runs.restore_model(run, checkpoint)
        seconds = breakdown(model, FLAGS.pseudo_sentences, FLAGS.breakdown_batch,
                            FLAGS.pseudo_length, FLAGS.pseudo_length, FLAGS.breakdown_beam,
                            FLAGS.xla != "off")
        rows.append({"run": name, "run_dir": path, "checkpoint": ckpt,
                     **{k: round(v, 3) for k, v in seconds.items()}})
        print(rows[-1], flush=True)
    head = ["run", *COMPONENTS, "others", "total"]
    table = "\n".join(markdown_table(head, [[r.get(c, "-") for c in head] for r in rows])) + "\n"
    print(table)
    if FLAGS.output:
        values = {"rows": rows, "sentences": FLAGS.pseudo_sentences,
                  "length": FLAGS.pseudo_length, "beam": FLAGS.breakdown_beam,
                  "batch": FLAGS.breakdown_batch, "xla": FLAGS.xla != "off", "markdown": table}
        write_result(FLAGS.output + ".json", "breakdown", values)
        with open(FLAGS.output + ".md", "w", encoding="utf-8") as f:
            f.write(table)


def side_by_side_main():
    from tfnmt.evaluation import side_by_side
    from tfnmt.serving.ctranslate2_export import import_ctranslate2
    from tfnmt.core.config import SHAPES

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
    if not (batches and beams and threads) or min(batches + beams + threads) < 1:
        raise UserError("batch sizes, beam sizes and thread counts must be positive.")
    unknown = [c for c in FLAGS.tfnmt_configs if c not in side_by_side.TFNMT_CONFIGS]
    if unknown or not FLAGS.tfnmt_configs:
        raise UserError(f"--tfnmt_configs takes some of "
                        f"{', '.join(side_by_side.TFNMT_CONFIGS)}; got "
                        f"{', '.join(FLAGS.tfnmt_configs) or 'none'}.")
    output = FLAGS.output or "results/ctranslate2_side_by_side"
    corpus.check_output_path(output + ".json")
    cells = side_by_side.side_by_side(FLAGS.shapes, batches, beams,
                                      FLAGS.ct2_compute_types or ["float32", "int8"], threads,
                                      max(FLAGS.repeats, 3),
                                      tfnmt_configs=FLAGS.tfnmt_configs)
    table = side_by_side.markdown(cells)
    print(table)
    settings = {"source_tokens": side_by_side.SOURCE_TOKENS, "steps": side_by_side.STEPS,
                "vocab_size": side_by_side.VOCAB_SIZE, "tfnmt_configs": {
                    c: dict(zip(("precision", "xla", "intra_op_threads"),
                                side_by_side.TFNMT_CONFIGS[c]))
                    for c in FLAGS.tfnmt_configs},
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
    batch_threads = {}
    try:
        for b, t in (p.split(":") for p in FLAGS.batch_threads):
            counts = batch_threads.setdefault(int(b), [])
            counts += [int(t)] if int(t) not in counts else []
    except ValueError:
        batch_threads = None
    if batch_threads is None or min(sum(batch_threads.values(), []), default=0) < 0:
        raise UserError(f"--batch_threads takes batch:threads pairs of integers (threads >= "
                        f"0), got {','.join(FLAGS.batch_threads)}.")
    unknown = set(FLAGS.precisions) - set(runs.PRECISIONS)
    if unknown or not FLAGS.precisions:
        raise UserError(f"--precisions takes {', '.join(runs.PRECISIONS)}, got "
                        f"{', '.join(FLAGS.precisions)}.")
    if not (batch_sizes and beam_sizes and iterations and halfwidths):
        raise UserError("--batch_sizes, --beam_sizes, --iterations and --length_halfwidths "
                        "need at least one value each.")
    if FLAGS.repeats < 1 or FLAGS.rounds < 1 or FLAGS.num_sentences < 0:
        raise UserError(f"--repeats and --rounds must be at least 1 and --num_sentences at "
                        f"least 0, got {FLAGS.repeats}, {FLAGS.rounds} and "
                        f"{FLAGS.num_sentences}.")
    if min(batch_sizes + beam_sizes + iterations) < 1 or min(halfwidths) < 0:
        raise UserError("batch sizes, beam sizes and iterations must be positive, halfwidths "
                        ">= 0.")
    specs = parse_runs(FLAGS.runs, FLAGS.checkpoint)
    selections = parse_nat_selection(FLAGS.nat_selection, [name for name, _, _ in specs])
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
                               nat_selection=None, collapse_repeats=FLAGS.collapse_repeats)
    settings = {"source": FLAGS.source, "reference": FLAGS.reference,
                "sentences": len(sentences), "reference_run": reference_run,
                "reference_beam": FLAGS.reference_beam, "length_penalty": FLAGS.length_penalty,
                "repeats": FLAGS.repeats, "rescore_run": FLAGS.rescore_run,
                "rescore_checkpoint": FLAGS.rescore_checkpoint,
                "nat_selection": selections, "precisions": FLAGS.precisions,
                "shortlist": FLAGS.shortlist,
                "ct2_compute_types": FLAGS.ct2_compute_types, "warm_up": "whole pass",
                **(metric_signatures() if FLAGS.reference else {})}
    if FLAGS.intra_op_threads:  # recorded when set (files measured before stay resumable)
        settings["intra_op_threads"] = FLAGS.intra_op_threads
    if batch_threads:
        settings["batch_threads"] = {str(b): t[0] if len(t) == 1 else t
                                     for b, t in sorted(batch_threads.items())}
    if FLAGS.collapse_repeats:  # only then: files written before the flag still resume
        settings["collapse_repeats"] = True
    if FLAGS.rounds > 1:  # likewise
        settings["rounds"] = FLAGS.rounds
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
        from tfnmt.serving.ctranslate2_export import import_ctranslate2

        import_ctranslate2()
    rows = benchmark(specs, sentences, references, batch_sizes, beam_sizes, xla_modes,
                     base_config, FLAGS.repeats, iterations, halfwidths, kept=kept,
                     on_run=save, ct2=ct2, precisions=FLAGS.precisions,
                     shortlist=FLAGS.shortlist, threads=FLAGS.intra_op_threads,
                     batch_threads=batch_threads, nat_selection=selections,
                     rounds=FLAGS.rounds)
    print(save(rows, complete=True))
    if FLAGS.output:
        print(f"wrote {FLAGS.output}.json and {FLAGS.output}.md")


if __name__ == "__main__":
    run_main(main)
