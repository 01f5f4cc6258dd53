"""Decoding flags shared by translate, evaluate, export and distill (entry points only)."""

from absl import flags

from tfnmt.config import DecodeConfig
from tfnmt.errors import UserError

flags.DEFINE_string("checkpoint", "best", "best, latest, averaged, or a checkpoint path.")
flags.DEFINE_integer("beam_size", 4, "Beam size (1: greedy).")
flags.DEFINE_float("length_penalty", 0.6, "GNMT length-penalty alpha (0: none).")
flags.DEFINE_float("max_length_a", 1.5, "Output limit a * source_length + b: a.")
flags.DEFINE_integer("max_length_b", 10, "Output limit a * source_length + b: b.")
flags.DEFINE_integer("n_best", 1, "Hypotheses written per sentence.")
flags.DEFINE_integer("batch_size", 32, "Sentences per batch.")
flags.DEFINE_bool("xla", True, "Compile the decode loop with XLA (jit_compile).")

FLAGS = flags.FLAGS


def decode_config():
    if FLAGS.beam_size < 1:
        raise UserError(f"--beam_size must be at least 1, got {FLAGS.beam_size}.")
    if FLAGS.length_penalty < 0:
        raise UserError(f"--length_penalty must be >= 0, got {FLAGS.length_penalty}.")
    return DecodeConfig(beam_size=FLAGS.beam_size, length_penalty=FLAGS.length_penalty,
                        max_length_a=FLAGS.max_length_a, max_length_b=FLAGS.max_length_b,
                        n_best=FLAGS.n_best, batch_size=FLAGS.batch_size, xla=FLAGS.xla)


def load_translator(run_dir, checkpoint=None, config=None):
    """(Translator, checkpoint path) for a run directory, with the decoding flags."""
    from tfnmt import runs
    from tfnmt.inference import Translator

    if not run_dir:
        raise UserError("--run_dir is required.")
    run = runs.load(run_dir)
    model, path = runs.restore_model(run, checkpoint or FLAGS.checkpoint)
    source, target = run.tokenizers()
    return Translator(model, source, target, config or decode_config(), run.model.max_length), path
