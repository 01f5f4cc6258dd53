"""Builds a run's lexical shortlist from its training pairs:
python -m tfnmt.shortlist --run_dir=runs/x [--per_source=20 --frequent=200 --ranking=dice]
writes runs/x/shortlist.npz, which translate/evaluate/benchmark use with --shortlist."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

from absl import flags

from tfnmt.core.errors import UserError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Trained run directory (its training pairs and vocabularies).")
flags.DEFINE_integer("per_source", 20, "Target pieces kept per source piece (co-occurrence).")
flags.DEFINE_integer("frequent", 200, "Most frequent target pieces always kept.")
flags.DEFINE_enum("ranking", "count", ["count", "dice"], "How a source piece's targets are "
                  "ranked: pairs holding both, or their Dice coefficient.")


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
    sources = corpus.read_lines(run.data.train_source)
    targets = corpus.read_lines(run.data.train_target)
    if run.data.train_distilled:  # the targets the run also learned from
        sources, targets = sources * 2, targets + corpus.read_lines(run.data.train_distilled)
    if len(sources) != len(targets):
        raise UserError(f"{run.data.train_source} and its targets differ in line count.")
    table = shortlist.build(token_lists(source_tok, sources), token_lists(target_tok, targets),
                            source_tok.vocab_size, FLAGS.per_source, FLAGS.frequent,
                            FLAGS.ranking)
    print(f"wrote {shortlist.save(FLAGS.run_dir, table)} ({FLAGS.per_source} targets per source "
          f"piece by {FLAGS.ranking}, {FLAGS.frequent} frequent, from {len(sources)} pairs)")


if __name__ == "__main__":
    run_main(main)
