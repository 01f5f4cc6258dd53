"""Analysis of trained models:
  heatmaps:    python -m tfnmt.analyze --mode=heatmaps --runs=teacher=runs/a@averaged,nart=runs/b \\
                   --sentence="A man is riding a bike." --output=results/heatmaps.png
  repeats:     python -m tfnmt.analyze --mode=repeats --hypothesis=translations.txt
  actions:     python -m tfnmt.analyze --mode=actions --runs=with=runs/dat,without=runs/dat0 \
                   --source=val.en --target=val.de --output=results/actions.png
  hint_scales: python -m tfnmt.analyze --mode=hint_scales --teacher_run=runs/a \\
                   --source=train.en --target=train.de [--init_from=runs/a] [--result=results/hint_scales.json]
  hrt_stages:  python -m tfnmt.analyze --mode=hrt_stages --runs=runs/hrt@averaged \\
                   --teacher_run=runs/a@averaged --source=test.en --target=test.de [--beam_size=4]
  nat_candidates: python -m tfnmt.analyze --mode=nat_candidates --runs=runs/nart@averaged \\
                   --source=val.en --target=val.de --length_halfwidth=4 [--nat_selection=total]
  imitation:   python -m tfnmt.analyze --mode=imitation --runs=with=runs/a@ckpt-3000,without=runs/b \\
                   --teacher_run=runs/dat@averaged --source=train.en --target=train.de [--batches=10]
"""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import json

from absl import flags

from tfnmt import runs
from tfnmt.core.config import DataConfig
from tfnmt.core.errors import run_main, UserError
from tfnmt.core.provenance import write_result
from tfnmt.data import corpus

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", None, ["heatmaps", "repeats", "actions", "hint_scales",
                                 "hrt_stages", "nat_candidates", "imitation"], "What to analyse.")
flags.DEFINE_list("runs", [], "heatmaps, actions, hrt_stages (one HRT run), nat_candidates "
                  "(one NAT run), imitation (imitate-NAT learners): name=run_dir[@checkpoint] "
                  "(default best).")
flags.DEFINE_string("sentence", None, "heatmaps: the source sentence.")
flags.DEFINE_integer("layer", -1, "heatmaps: decoder layer (-1: the last).")
flags.DEFINE_integer("head", 0, "heatmaps: encoder-decoder attention head.")
flags.DEFINE_string("output", None, "heatmaps, actions: PNG to write.")
flags.DEFINE_string("hypothesis", None, "repeats: translations, one per line.")
flags.DEFINE_string("teacher_run", None, "hint_scales: the trained AT teacher; hrt_stages: the "
                    "AT whose translations the fill is given; imitation: the DAT demonstrator; "
                    "run_dir[@checkpoint].")
flags.DEFINE_string("source", None, "actions, hrt_stages, nat_candidates: dev/test source; "
                    "hint_scales, imitation: training source.")
flags.DEFINE_string("target", None, "actions, hrt_stages, nat_candidates: dev/test target; "
                    "hint_scales, imitation: training target.")
flags.DEFINE_integer("beam_size", 4, "hrt_stages: the teacher's beam, HRT's Skip-AT beam and "
                     "its beam as an AT.", lower_bound=1)
flags.DEFINE_bool("xla", True, "hrt_stages, nat_candidates: decode with XLA.")
flags.DEFINE_integer("length_halfwidth", 4, "nat_candidates: 2B+1 lengths (B), rescored by the "
                     "run's teacher.", lower_bound=1)
flags.DEFINE_enum("nat_selection", None, ["normalized", "total"], "nat_candidates: the rule "
                  "whose kept candidates and ranks are reported (default: the method's).")
flags.DEFINE_integer("batches", 10, "hint_scales: batches of 2,048 tokens to average over; "
                     "imitation: batches of the learner's batch size.", lower_bound=1)
flags.DEFINE_float("gamma_st", 0.5, "hint_scales: student cosine threshold.")
flags.DEFINE_float("gamma_tr", 0.5, "hint_scales: teacher cosine threshold.")
flags.DEFINE_string("init_from", "", "hint_scales: start the NART from this run's weights, "
                    "run_dir[@checkpoint] (as training with --init_from does) instead of a "
                    "fresh initialisation.")
flags.DEFINE_string("result", None, "Also write the numbers as a JSON result here.")


def heatmaps():
    from tfnmt.evaluation.analysis import plot_heatmaps, sentence_internals

    if not FLAGS.runs or not FLAGS.sentence or not FLAGS.output:
        raise UserError("heatmaps need --runs, --sentence and --output.")
    panels = []
    for name, run, model in load_runs(FLAGS.runs):
        layers = run.model.decoder_layers
        if not -layers <= FLAGS.layer < layers or not 0 <= FLAGS.head < run.model.num_heads:
            raise UserError(f"{run.run_dir} has {layers} decoder layers and "
                            f"{run.model.num_heads} heads; --layer {FLAGS.layer} --head "
                            f"{FLAGS.head} is out of range.")
        source, target = run.tokenizers()
        panels.append((name, sentence_internals(model, source, target, FLAGS.sentence,
                                                FLAGS.layer, FLAGS.head)))
        print(f"{name}: {' '.join(panels[-1][1]['target'])}", flush=True)
    plot_heatmaps(panels, FLAGS.output, FLAGS.layer, FLAGS.head)
    print(f"wrote {FLAGS.output}")
    return {"sentence": FLAGS.sentence, "png": FLAGS.output, "layer": FLAGS.layer,
            "head": FLAGS.head, "translations": {n: " ".join(p["target"]) for n, p in panels}}


def load_runs(specs):
    """[(name, run, model)] for name=run_dir[@checkpoint] specs."""
    loaded = []
    for spec in specs:
        name, _, path = spec.rpartition("=")
        path, checkpoint = runs.split_checkpoint(path)
        run = runs.load(path)
        loaded.append((name or path, run, runs.restore_model(run, checkpoint)[0]))
    return loaded


def actions():
    from tfnmt.evaluation.analysis import action_usage, plot_action_usage

    if not (FLAGS.runs and FLAGS.source and FLAGS.target and FLAGS.output):
        raise UserError("actions needs --runs, --source, --target and --output.")
    corpus.check_parallel(FLAGS.source, FLAGS.target)
    usages = [(name, action_usage(run, model, FLAGS.source, FLAGS.target))
              for name, run, model in load_runs(FLAGS.runs)]
    plot_action_usage(usages, FLAGS.output)
    print(f"wrote {FLAGS.output}")
    return {"png": FLAGS.output, "source": FLAGS.source, "runs": {
        name: {"categories_used": int((c > 0).sum()), "categories": len(c),
               "top_share": round(float(c.max() / max(c.sum(), 1)), 4)} for name, c in usages}}


def hrt_stages():
    from tfnmt.evaluation.analysis import hrt_stages as stages
    from tfnmt.evaluation.benchmark import metric_signatures

    if not (len(FLAGS.runs) == 1 and FLAGS.teacher_run and FLAGS.source and FLAGS.target):
        raise UserError("hrt_stages needs one --runs (the HRT run), --teacher_run, --source and "
                        "--target.")
    corpus.check_parallel(FLAGS.source, FLAGS.target)
    (name, run, model), (_, teacher_run, teacher) = load_runs(FLAGS.runs + [FLAGS.teacher_run])
    if run.train.objective != "hrt":
        raise UserError(f"{run.run_dir} was trained with --objective={run.train.objective}, "
                        "not hrt.")
    runs.check_same_vocabularies(run, teacher_run, "teacher")
    values = stages(run, model, teacher_run, teacher, corpus.read_lines(FLAGS.source),
                    corpus.read_lines(FLAGS.target), FLAGS.beam_size, xla=FLAGS.xla)
    return {"run": name, "teacher_run": FLAGS.teacher_run, "source": FLAGS.source, **values,
            "bleu_signature": metric_signatures()["bleu_signature"]}


def nat_candidates():
    from tfnmt.evaluation.analysis import nat_candidates as candidates
    from tfnmt.evaluation.benchmark import metric_signatures

    if not (len(FLAGS.runs) == 1 and FLAGS.source and FLAGS.target):
        raise UserError("nat_candidates needs one --runs (the NAT run), --source and --target.")
    corpus.check_parallel(FLAGS.source, FLAGS.target)
    [(name, run, model)] = load_runs(FLAGS.runs)
    if not hasattr(model, "nat_decode"):
        raise UserError(f"nat_candidates needs a non-autoregressive run; {run.run_dir} is a "
                        f"{run.model.architecture} run.")
    values = candidates(run, model, corpus.read_lines(FLAGS.source),
                        corpus.read_lines(FLAGS.target), FLAGS.length_halfwidth,
                        FLAGS.nat_selection, xla=FLAGS.xla)
    return {"run": name, "source": FLAGS.source, **values,
            "bleu_signature": metric_signatures()["bleu_signature"]}


def imitation():
    from tfnmt.evaluation.analysis import imitation_scales

    if not (FLAGS.runs and FLAGS.teacher_run and FLAGS.source and FLAGS.target):
        raise UserError("imitation needs --runs (imitate-NAT learners), --teacher_run (their "
                        "DAT), --source and --target.")
    corpus.check_parallel(FLAGS.source, FLAGS.target)
    learners = load_runs(FLAGS.runs)
    (_, dat_run, dat), = load_runs([FLAGS.teacher_run])
    if dat_run.model.architecture != "dat":
        raise UserError(f"{dat_run.run_dir} is not a DAT (--architecture=dat).")
    values = {"teacher_run": FLAGS.teacher_run, "source": FLAGS.source, "target": FLAGS.target,
              "batches": FLAGS.batches, "runs": {}}
    for name, run, model in learners:
        runs.check_same_vocabularies(run, dat_run, "teacher")
        values["runs"][name] = imitation_scales(run, model, dat, FLAGS.source, FLAGS.target,
                                                FLAGS.batches)
        print(f"{name}: {json.dumps(values['runs'][name])}", flush=True)
    return values


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    for path in (FLAGS.result, FLAGS.output):
        if path:
            corpus.check_output_path(path)
    if FLAGS.mode == "heatmaps":
        values = heatmaps()
    elif FLAGS.mode == "actions":
        values = actions()
    elif FLAGS.mode == "repeats":
        from tfnmt.evaluation.analysis import repeated_token_rate

        if not FLAGS.hypothesis:
            raise UserError("repeats needs --hypothesis.")
        values = {"hypothesis": FLAGS.hypothesis,
                  "repeated_tokens_percent": round(repeated_token_rate(
                      corpus.read_lines(FLAGS.hypothesis)), 2)}
    elif FLAGS.mode == "hint_scales":
        from tfnmt.evaluation.analysis import hint_scales

        if not (FLAGS.teacher_run and FLAGS.source and FLAGS.target):
            raise UserError("hint_scales needs --teacher_run, --source and --target.")
        corpus.check_parallel(FLAGS.source, FLAGS.target)
        values = {"teacher_run": FLAGS.teacher_run, "gamma_st": FLAGS.gamma_st,
                  "gamma_tr": FLAGS.gamma_tr, "init_from": FLAGS.init_from,
                  **hint_scales(FLAGS.teacher_run,
                                DataConfig(train_source=FLAGS.source, train_target=FLAGS.target),
                                FLAGS.batches, FLAGS.gamma_st, FLAGS.gamma_tr,
                                init_from=FLAGS.init_from)}
    elif FLAGS.mode == "hrt_stages":
        values = hrt_stages()
    elif FLAGS.mode == "nat_candidates":
        values = nat_candidates()
    elif FLAGS.mode == "imitation":
        values = imitation()
    else:
        raise UserError("--mode is required: heatmaps, repeats, actions, hint_scales, "
                        "hrt_stages, nat_candidates or imitation.")
    print(json.dumps(values, indent=2))
    if FLAGS.result:
        write_result(FLAGS.result, f"analysis_{FLAGS.mode}", values)


if __name__ == "__main__":
    run_main(main)
