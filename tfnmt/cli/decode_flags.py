"""Decoding flags shared by translate, evaluate, export and distill (entry points only)."""

from absl import flags

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import UserError
from tfnmt.data import shortlist as shortlist_lib
from tfnmt.inference.translator import load_rescorer, resolve_method, Translator

flags.DEFINE_string("checkpoint", "best", "best, latest, averaged, a checkpoint of the run "
                    "by name (ckpt-1500) or a checkpoint path.")
flags.DEFINE_integer("beam_size", None, "Beam size (1: greedy). Default: the method's "
                     "paper value (tfnmt/methods: 4; hybrid and rnmt 12; hrt's b_at 5).")
flags.DEFINE_float("length_penalty", None, "GNMT length-penalty alpha (0: none). Default: the "
                   "method's (0.6; hybrid and rnmt 1.0).")
flags.DEFINE_float("max_length_a", 1.5, "Output limit a * source_length + b: a.")
flags.DEFINE_integer("max_length_b", 10, "Output limit a * source_length + b: b.")
flags.DEFINE_integer("n_best", 1, "Hypotheses written per sentence.")
flags.DEFINE_integer("batch_size", 32, "Sentences per batch (see --batch_tokens).")
flags.DEFINE_integer("batch_tokens", 0, "If > 0: batches of at most this many padded source "
                     "tokens (rows a power of two per width), instead of --batch_size.")
flags.DEFINE_bool("xla", True, "Compile the decode loop with XLA (jit_compile).")
flags.DEFINE_enum("method", "auto", ["auto", "autoregressive", "hrt", "mask_predict", "nat"],
                  "Decoding: auto picks the run's own (hrt for HRT runs, mask_predict for CMLM, "
                  "nat for NAT runs).")
flags.DEFINE_integer("hrt_chunk", 0, "hrt: chunk size k (0: the run's).")
flags.DEFINE_integer("n_nat", 1, "hrt: Skip-AT hypotheses completed by Skip-CMLM.")
flags.DEFINE_integer("iterations", 10, "mask_predict: refinement passes.")
flags.DEFINE_integer("length_beam", 5, "mask_predict: length candidates.")
flags.DEFINE_integer("length_halfwidth", None, "nat: decode 2B+1 lengths around the "
                     "predicted one (B). Default: the method's (nart 0; imitate_nat 3, LPD).")
flags.DEFINE_enum("nat_selection", None, ["normalized", "total"],
                  "nat: pick the candidate with the best length-normalised or total "
                  "log-probability. Default: the method's (hint_nart total, the paper's "
                  "\"highest probability\"; imitate_nat normalized, its paper is silent).")
flags.DEFINE_bool("collapse_repeats", False, "nat: keep each run of repeated consecutive "
                  "tokens of a candidate once, before it is scored (neither NAT paper does).")
flags.DEFINE_string("rescore_run", None, "nat: AT run that rescores the length candidates "
                    "('': the NAT itself). Default: the run's teacher (the AT it learned from).")
flags.DEFINE_string("rescore_checkpoint", None, "nat: the rescoring run's checkpoint. Default: "
                    "the teacher's training checkpoint for the run's teacher, else best.")
flags.DEFINE_bool("shortlist", False, "Decode over the union of the batch's lexical "
                  "shortlists (<run_dir>/shortlist.npz from python -m tfnmt.shortlist) only.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "int8"],
                  "Weights and matmuls at decode time: int8 (Keras quantization; Transformer "
                  "family) is faster with XLA, bfloat16 without it (--noxla) on CPUs with "
                  "AVX-512 BF16 or AMX; see docs/decisions.md.")

FLAGS = flags.FLAGS


def decode_config():
    if FLAGS.beam_size is not None and FLAGS.beam_size < 1:
        raise UserError(f"--beam_size must be at least 1, got {FLAGS.beam_size}.")
    if FLAGS.max_length_a < 0 or FLAGS.max_length_b < 0 or (
            FLAGS.max_length_a == 0 and FLAGS.max_length_b < 1):
        raise UserError(f"the output limit --max_length_a * source length + --max_length_b "
                        f"must allow a token: got a {FLAGS.max_length_a}, b {FLAGS.max_length_b}.")
    if FLAGS.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, got {FLAGS.batch_size}.")
    if FLAGS.batch_tokens < 0:
        raise UserError(f"--batch_tokens must be >= 0, got {FLAGS.batch_tokens}.")
    if FLAGS.length_penalty is not None and FLAGS.length_penalty < 0:
        raise UserError(f"--length_penalty must be >= 0, got {FLAGS.length_penalty}.")
    return DecodeConfig(beam_size=FLAGS.beam_size, length_penalty=FLAGS.length_penalty,
                        max_length_a=FLAGS.max_length_a, max_length_b=FLAGS.max_length_b,
                        n_best=FLAGS.n_best, batch_size=FLAGS.batch_size, xla=FLAGS.xla,
                        batch_tokens=FLAGS.batch_tokens,
                        method=FLAGS.method, hrt_chunk=FLAGS.hrt_chunk, n_nat=FLAGS.n_nat,
                        iterations=FLAGS.iterations, length_beam=FLAGS.length_beam,
                        length_halfwidth=FLAGS.length_halfwidth, nat_selection=FLAGS.nat_selection,
                        collapse_repeats=FLAGS.collapse_repeats,
                        rescore_run=FLAGS.rescore_run,
                        rescore_checkpoint=FLAGS.rescore_checkpoint, precision=FLAGS.precision,
                        shortlist=FLAGS.shortlist)


def load_translator(run_dir, checkpoint=None, config=None):
    """(Translator, checkpoint path) for a run directory, with the decoding flags."""

    if not run_dir:
        raise UserError("--run_dir is required.")
    run = runs.load(run_dir)
    config = resolve_method(config or decode_config(), run)
    model, path = runs.restore_model(run, checkpoint or FLAGS.checkpoint, config.precision)
    source, target = run.tokenizers()
    shortlist = None
    if config.shortlist:

        shortlist = shortlist_lib.load(run_dir)
    return Translator(model, source, target, config, run.model.max_length,
                      load_rescorer(config, run), shortlist), path
