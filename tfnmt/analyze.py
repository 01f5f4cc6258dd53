"""Analysis of trained models:
  heatmaps:    python -m tfnmt.analyze --mode=heatmaps --runs=teacher=runs/a@averaged,nart=runs/b \\
                   --sentence="A man is riding a bike." --output=results/heatmaps.png
  repeats:     python -m tfnmt.analyze --mode=repeats --hypothesis=translations.txt
  hint_scales: python -m tfnmt.analyze --mode=hint_scales --teacher_run=runs/a \\
                   --source=train.en --target=train.de [--result=results/hint_scales.json]
"""

import json

from absl import flags

from tfnmt import runs
from tfnmt.config import DataConfig
from tfnmt.data import corpus
from tfnmt.errors import UserError, run_main
from tfnmt.provenance import write_result

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", None, ["heatmaps", "repeats", "hint_scales"], "What to analyse.")
flags.DEFINE_list("runs", [], "heatmaps: name=run_dir[@checkpoint] (checkpoint default best).")
flags.DEFINE_string("sentence", None, "heatmaps: the source sentence.")
flags.DEFINE_integer("layer", -1, "heatmaps: decoder layer (-1: the last).")
flags.DEFINE_integer("head", 0, "heatmaps: encoder-decoder attention head.")
flags.DEFINE_string("output", None, "heatmaps: PNG to write.")
flags.DEFINE_string("hypothesis", None, "repeats: translations, one per line.")
flags.DEFINE_string("teacher_run", None, "hint_scales: the trained AT teacher.")
flags.DEFINE_string("source", None, "hint_scales: training source text.")
flags.DEFINE_string("target", None, "hint_scales: training target text (distilled).")
flags.DEFINE_integer("batches", 10, "hint_scales: batches of 2,048 tokens to average over.")
flags.DEFINE_float("gamma_st", 0.5, "hint_scales: student cosine threshold.")
flags.DEFINE_float("gamma_tr", 0.5, "hint_scales: teacher cosine threshold.")
flags.DEFINE_string("result", None, "Also write the numbers as a JSON result here.")


def heatmaps():
    from tfnmt.analysis import plot_heatmaps, sentence_internals

    if not FLAGS.runs or not FLAGS.sentence or not FLAGS.output:
        raise UserError("heatmaps need --runs, --sentence and --output.")
    panels = []
    for spec in FLAGS.runs:
        name, _, path = spec.rpartition("=")
        path, _, checkpoint = path.partition("@")
        run = runs.load(path)
        model, _ = runs.restore_model(run, checkpoint or "best")
        layers = run.model.decoder_layers
        if not -layers <= FLAGS.layer < layers or not 0 <= FLAGS.head < run.model.num_heads:
            raise UserError(f"{path} has {layers} decoder layers and {run.model.num_heads} "
                            f"heads; --layer {FLAGS.layer} --head {FLAGS.head} is out of range.")
        source, target = run.tokenizers()
        panels.append((name or path, sentence_internals(model, source, target, FLAGS.sentence,
                                                        FLAGS.layer, FLAGS.head)))
        print(f"{name or path}: {' '.join(panels[-1][1]['target'])}", flush=True)
    plot_heatmaps(panels, FLAGS.output, FLAGS.layer, FLAGS.head)
    print(f"wrote {FLAGS.output}")
    return {"sentence": FLAGS.sentence, "png": FLAGS.output, "layer": FLAGS.layer,
            "head": FLAGS.head, "translations": {n: " ".join(p["target"]) for n, p in panels}}


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if FLAGS.mode == "heatmaps":
        values = heatmaps()
    elif FLAGS.mode == "repeats":
        from tfnmt.analysis import repeated_token_rate

        if not FLAGS.hypothesis:
            raise UserError("repeats needs --hypothesis.")
        values = {"hypothesis": FLAGS.hypothesis,
                  "repeated_tokens_percent": round(repeated_token_rate(
                      corpus.read_lines(FLAGS.hypothesis)), 2)}
    elif FLAGS.mode == "hint_scales":
        from tfnmt.analysis import hint_scales

        if not (FLAGS.teacher_run and FLAGS.source and FLAGS.target):
            raise UserError("hint_scales needs --teacher_run, --source and --target.")
        corpus.check_parallel(FLAGS.source, FLAGS.target)
        values = {"teacher_run": FLAGS.teacher_run, "gamma_st": FLAGS.gamma_st,
                  "gamma_tr": FLAGS.gamma_tr,
                  **hint_scales(FLAGS.teacher_run,
                                DataConfig(train_source=FLAGS.source, train_target=FLAGS.target),
                                FLAGS.batches, FLAGS.gamma_st, FLAGS.gamma_tr)}
    else:
        raise UserError("--mode is required: heatmaps, repeats or hint_scales.")
    print(json.dumps(values, indent=2))
    if FLAGS.result:
        write_result(FLAGS.result, f"analysis_{FLAGS.mode}", values)


if __name__ == "__main__":
    run_main(main)
