"""Builds a run's lexical shortlist from its training pairs:
python -m tfnmt.shortlist --run_dir=runs/x [--per_source=100 --frequent=100 --ranking=ibm1]
writes runs/x/shortlist.npz, which translate/evaluate/benchmark use with --shortlist. The
defaults are the lists that cost the Multi30k teacher least BLEU at batch 1 for their size
(docs/decisions.md, "Lexical shortlist")."""

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
