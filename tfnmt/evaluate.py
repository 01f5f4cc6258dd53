"""Scores a run with sacreBLEU and chrF:
python -m tfnmt.evaluate --run_dir=... --source=test.en --reference=test.de [--result=results/x.json]
(or --hypothesis=file to score existing translations)."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import os
import time

import sacrebleu
from absl import flags

from tfnmt.cli import decode_flags
from tfnmt.core.errors import run_main, UserError
from tfnmt.core.progress import Progress
from tfnmt.core.provenance import write_result
from tfnmt.data import corpus
from tfnmt.evaluation.analysis import repeated_token_rate
from tfnmt.evaluation.benchmark import file_tag
from tfnmt.runs import records

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(decode_flags)  # --help lists the decoding flags too
flags.DEFINE_string("run_dir", None, "Trained run directory.")
flags.DEFINE_string("source", None, "Source file to translate.")
flags.DEFINE_string("reference", None, "Reference translations, line-aligned.")
flags.DEFINE_string("hypothesis", None, "Score this file instead of translating.")
flags.DEFINE_string("name", None, "Name of this result (default: the run directory's name).")
flags.DEFINE_string("result", None, "Write the scores as JSON here (e.g. results/<name>.json).")


def score(hypotheses, references):
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {"bleu": round(b.score, 2), "bleu_signature": str(bleu.get_signature()),
            "bleu_details": str(b), "chrf": round(c.score, 2),
            "chrf_signature": str(chrf.get_signature()),
            "repeated_tokens_percent": round(repeated_token_rate(hypotheses), 2)}


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if not FLAGS.reference:
        raise UserError("--reference is required.")
    if FLAGS.result:
        corpus.check_output_path(FLAGS.result, [FLAGS.reference, FLAGS.source, FLAGS.hypothesis])
    references = corpus.read_lines(FLAGS.reference)
    values = {"reference": FLAGS.reference}
    if FLAGS.hypothesis:
        hypotheses = corpus.read_lines(FLAGS.hypothesis)
        values["hypothesis"] = FLAGS.hypothesis
    else:
        if not FLAGS.source:
            raise UserError("give --source to translate, or --hypothesis to score a file.")
        corpus.check_parallel(FLAGS.source, FLAGS.reference)
        translator, checkpoint = decode_flags.load_translator(FLAGS.run_dir)
        if translator.config.n_best != 1:
            raise UserError("evaluate scores the best hypothesis only; drop --n_best.")
        start = time.time()
        sources = corpus.read_lines(FLAGS.source)
        progress = Progress(len(sources))
        hypotheses = [n_best[0][0] for n_best in translator.translate(sources, progress)]
        progress.done()
        segments = records.read(FLAGS.run_dir, records.SEGMENTS, None)
        if segments is not None:
            values["training"] = {"segments": segments, "wall_seconds": round(
                sum(s["wall_seconds"] for s in segments), 1)}
        values["run_config"] = records.read(FLAGS.run_dir, "config.json", None)
        values.update(source=FLAGS.source, run_dir=FLAGS.run_dir, checkpoint=checkpoint,
                      decode_seconds=round(time.time() - start, 2),
                      decode=vars(translator.config))
        tag = (FLAGS.checkpoint if FLAGS.checkpoint in ("best", "latest", "averaged")
               else os.path.basename(checkpoint))
        out = os.path.join(FLAGS.run_dir, "translations", f"{os.path.basename(FLAGS.source)}."
                           f"{tag}.{file_tag(translator.config)}")
        corpus.write_lines(out, hypotheses)
        values["translations"] = out
    if len(hypotheses) != len(references):
        raise UserError(f"{len(hypotheses)} hypotheses but {len(references)} references.")
    values.update(score(hypotheses, references))
    values["name"] = FLAGS.name or os.path.basename(os.path.normpath(FLAGS.run_dir or "scored"))
    print(values["bleu_details"])
    print(f"chrF2 = {values['chrf']:.2f}  ({values['chrf_signature']})")
    print(f"BLEU signature: {values['bleu_signature']}")
    if FLAGS.result:
        write_result(FLAGS.result, "evaluation", values)
        print(f"wrote {FLAGS.result}")


if __name__ == "__main__":
    run_main(main)
