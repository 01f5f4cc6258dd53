"""Builds a run's lexical shortlist from its training pairs:
python -m tfnmt.shortlist --run_dir=runs/x [--per_source=100 --frequent=100 --ranking=ibm1]
writes runs/x/shortlist.npz, which translate/evaluate/benchmark use with --shortlist. The
defaults are the lists that cost the Multi30k teacher least BLEU at batch 1 for their size
(docs/decisions.md, "Lexical shortlist").
python -m tfnmt.shortlist --run_dir=runs/x --check_source=test.en --check_target=test.hyp
instead reports how much of those translations (or references) the run's lists hold, without
decoding: pick list sizes with it, then confirm with BLEU."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

from absl import flags

from tfnmt.core.errors import UserError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Trained run directory (its training pairs and vocabularies).")
flags.DEFINE_integer("per_source", 100, "Target pieces kept per source piece.")
flags.DEFINE_integer("frequent", 100, "Most frequent target pieces always kept.")
flags.DEFINE_enum("ranking", "ibm1", ["count", "dice", "ibm1"], "How a source piece's targets "
                  "are ranked: pairs holding both, their Dice coefficient, or IBM Model 1's "
                  "p(target | source).")
flags.DEFINE_string("check_source", None, "With --check_target: report the run's lists' coverage "
                    "of these sentences' translations instead of building lists.")
flags.DEFINE_string("check_target", None, "Translations (or references) of --check_source, one "
                    "a line.")
flags.DEFINE_integer("check_batch_size", 1, "Sentences decoded together (they share a union).")


def token_lists(tokenizer, lines, chunk=4096):
    import tensorflow as tf

    out = []
    for start in range(0, len(lines), chunk):
        out += [row.tolist() for row in
                tokenizer.tokenize(tf.constant(lines[start:start + chunk])).numpy()]
    return out


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if not FLAGS.run_dir:
        raise UserError("--run_dir is required.")
    from tfnmt import runs
    from tfnmt.data import corpus, shortlist

    run = runs.load(FLAGS.run_dir)
    source_tok, target_tok = run.tokenizers()
    if FLAGS.check_source or FLAGS.check_target:
        return check(run, source_tok, target_tok)
    sources = corpus.read_lines(run.data.train_source)
    targets = corpus.read_lines(run.data.train_target)
    if run.data.train_distilled:  # the targets the run also learned from
        sources, targets = sources * 2, targets + corpus.read_lines(run.data.train_distilled)
    if len(sources) != len(targets):
        raise UserError(f"{run.data.train_source} and its targets differ in line count.")
    table = shortlist.build(token_lists(source_tok, sources), token_lists(target_tok, targets),
                            source_tok.vocab_size, FLAGS.per_source, FLAGS.frequent,
                            FLAGS.ranking)
    settings = (f"{FLAGS.per_source} targets per source piece by {FLAGS.ranking}, "
                f"{FLAGS.frequent} frequent, from {len(sources)} pairs")
    print(f"wrote {shortlist.save(FLAGS.run_dir, table, settings)} ({settings})")


def check(run, source_tok, target_tok):
    from tfnmt.data import corpus, shortlist

    if not (FLAGS.check_source and FLAGS.check_target):
        raise UserError("--check_source and --check_target go together.")
    if FLAGS.check_batch_size < 1:
        raise UserError(f"--check_batch_size must be >= 1, got {FLAGS.check_batch_size}.")
    corpus.check_parallel(FLAGS.check_source, FLAGS.check_target)
    lists = shortlist.load(run.run_dir)
    found = shortlist.coverage(
        lists, token_lists(source_tok, corpus.read_lines(FLAGS.check_source)),
        token_lists(target_tok, corpus.read_lines(FLAGS.check_target)),
        target_tok.vocab_size, FLAGS.check_batch_size)
    print(f"lists: {shortlist.settings(run.run_dir) or 'settings not recorded'}\n"
          f"{found['sentences']} sentences, batch {FLAGS.check_batch_size}: union "
          f"{found['mean_union']:.0f} ids on average (decoded over {found['mean_padded']:.0f}); "
          f"{found['sentences_outside']} sentences have a piece outside it; "
          f"{found['pieces_outside_percent']:.2f}% of the pieces are outside")


if __name__ == "__main__":
    run_main(main)
