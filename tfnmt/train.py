"""Trains a model: python -m tfnmt.train --flagfile=configs/<name>.flags [--flag=value ...]."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import dataclasses
import os
import sys

from absl import flags

from tfnmt import methods, runs
from tfnmt.core import config as config_lib
from tfnmt.core.errors import run_main, UserError
from tfnmt.training.strategy import make_strategy, STRATEGIES

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Run directory (created, or resumed from its last checkpoint).")
# Data.
flags.DEFINE_string("train_source", None, "Training source text, one sentence per line.")
flags.DEFINE_string("train_target", None, "Training target text, line-aligned with the source.")
flags.DEFINE_string("valid_source", "", "Validation source text (loss, BLEU, best checkpoint).")
flags.DEFINE_string("valid_target", "", "Validation target text.")
flags.DEFINE_string("vocab", None, "SentencePiece model (joint), or the source one.")
flags.DEFINE_string("target_vocab", "", "Target SentencePiece model when not joint.")
flags.DEFINE_integer("max_length", 128, "Longest training sequence per side (tokens, EOS included).")
flags.DEFINE_enum("long_pairs", "drop", ["drop", "truncate"], "What to do with longer pairs.")
flags.DEFINE_integer("batch_tokens", 4096, "Token budget of a batch per replica (padded).")
flags.DEFINE_integer("shuffle_buffer", 100_000, "Sentence pairs in the shuffle buffer.")
# Model.
flags.DEFINE_string("architecture", "transformer", "Model architecture.")
flags.DEFINE_enum("shape", "small", list(config_lib.SHAPES), "Model shape preset.")
flags.DEFINE_integer("d_model", None, "Override the shape's width.")
flags.DEFINE_integer("ffn_dim", None, "Override the shape's feed-forward width.")
flags.DEFINE_integer("num_heads", None, "Override the shape's number of heads.")
flags.DEFINE_integer("encoder_layers", None, "Override the shape's encoder depth.")
flags.DEFINE_integer("decoder_layers", None, "Override the shape's decoder depth.")
flags.DEFINE_float("dropout", 0.1, "Dropout rate.")
flags.DEFINE_float("attention_dropout", 0.0, "Dropout on attention probabilities.")
flags.DEFINE_bool("pre_norm", True, "Pre-norm (True) or post-norm (False) residual blocks.")
flags.DEFINE_bool("share_embeddings", True, "One embedding table for source and target.")
flags.DEFINE_bool("tie_output", True, "Output projection = target embedding transposed.")
flags.DEFINE_integer("model_max_length", 256, "Longest sequence the model can decode.")
flags.DEFINE_integer("decoder_hidden", 512, "GRU decoder state size (hybrid, rnmt).")
flags.DEFINE_enum("attention", "additive", ["additive", "dot", "multihead"],
                  "GRU decoder attention (hybrid, rnmt).")
flags.DEFINE_integer("attention_units", 0, "Additive/dot attention size (0: decoder_hidden).")
# Training.
flags.DEFINE_integer("train_steps", 20_000, "Total optimizer steps.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate.")
flags.DEFINE_integer("warmup_steps", 4000, "Linear warm-up steps.")
flags.DEFINE_float("clip_norm", 1.0, "Global gradient-norm clipping (0 disables).")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing epsilon.")
flags.DEFINE_integer("accumulate_steps", 1, "Batches accumulated into one update.")
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_bfloat16"], "Precision policy.")
flags.DEFINE_bool("xla", True, "Compile the forward/backward pass with XLA.")
flags.DEFINE_bool("xla_elementwise", False, "With --noxla: XLA compiles only the element-wise ops; matrix products run on TensorFlow's kernels (oneDNN), which use AMX for bfloat16 (with --mixed_precision=mixed_bfloat16 on such a CPU, the fastest way to train; see docs/decisions.md).")
flags.DEFINE_integer("save_every", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept.")
flags.DEFINE_integer("log_every", 100, "Steps between console/TensorBoard lines.")
flags.DEFINE_integer("eval_every", 1000, "Steps between validations.")
flags.DEFINE_integer("eval_bleu_sentences", 500, "Validation sentences decoded for BLEU (0: none).")
flags.DEFINE_integer("patience", 0, "Stop when this many validations in a row have not beaten "
                     "the best score before them (greedy BLEU, else NLL); 0: train to "
                     "--train_steps.")
flags.DEFINE_integer("seed", 1234, "Seed for initialisation, dropout and data order.")
flags.DEFINE_string("teacher_run", "", "Distil from this run (word-level KL, Hybrid Eq. 1).")
flags.DEFINE_string("teacher_checkpoint", "best", "Teacher checkpoint: best, latest or averaged.")
flags.DEFINE_float("kd_lambda", 1.0, "Weight of the distillation KL term.")
flags.DEFINE_float("kd_label_smoothing", 0.0, "Label smoothing of the NLL beside the KL term "
                   "(Hybrid Eq. 1 has the plain NLL; --label_smoothing does not apply to it).")
flags.DEFINE_string("init_from", "", "Start a new run from another run's weights: "
                    "run_dir[@checkpoint] (best, latest, averaged or ckpt-N; default best).")
flags.DEFINE_enum("objective", "mle", ["mle", "hrt", "cmlm", "hint"], "Training objective.")
flags.DEFINE_float("hint_lambda", 8.0, "Hint-based NART: weight of the hidden-state hint "
                   "(0 disables it).")
flags.DEFINE_float("hint_mu", 4.0, "Hint-based NART: weight of the alignment hint (0 disables it).")
flags.DEFINE_float("gamma_st", 0.5, "Hidden-state hint: student cosine threshold (penalise >=).")
flags.DEFINE_float("gamma_tr", 0.5, "Hidden-state hint: teacher cosine threshold (penalise <=).")
flags.DEFINE_bool("nat_attend_self", None, "NAT decoders: positions attend to themselves in "
                  "self-attention. Default: the method's choice (nart no, imitate_nat yes; "
                  "see docs/decisions.md).")
flags.DEFINE_integer("num_actions", 512, "imitate-NAT: action categories of the imitation module.")
flags.DEFINE_enum("nat_copy", "soft", ["soft", "uniform"], "imitate_nat decoder inputs.")
flags.DEFINE_float("action_lambda", 0.001, "DAT: weight of the action regularisation L_pi.")
flags.DEFINE_float("action_alpha", 0.9, "DAT: moving-average rate of the action usage c.")
flags.DEFINE_float("il_lambda", 0.001, "imitate_nat: weight of the imitation loss L_IL.")
flags.DEFINE_float("length_weight", 0.1, "imitate_nat: weight of the length classifier's loss.")
flags.DEFINE_integer("hrt_chunk", 2, "HRT chunk size k (2, 3 or 4).")
flags.DEFINE_float("curriculum_lambda", 1.0, "HRT curriculum exponent (p_k = (t/T)^lambda).")
flags.DEFINE_integer("curriculum_steps", 0, "HRT curriculum length T (0: --train_steps when "
                     "the run is made; kept, so a longer --train_steps trains on at p_k = 1).")
flags.DEFINE_float("p_raw", 0.2, "HRT mixed distillation: probability of the raw target "
                   "(0.2: the HRT paper's choice for En<->De; 0.5 for its other pairs).")
flags.DEFINE_string("train_distilled", "", "Distilled targets line-aligned with the source.")
# Distribution.
flags.DEFINE_enum("distribution", "default", list(STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_list("devices", [], "Devices for one_device/mirrored (default: all).")
flags.DEFINE_string("tpu", "", "TPU address for --distribution=tpu.")
flags.DEFINE_bool("allow_config_change", False, "Resume a run with other data or training "
                  "settings (recorded in its config.json history); without it they are refused.")
flags.DEFINE_integer("stop_after", None, "Stop after this many steps in this process (testing).")


def configs_from_flags():
    overrides = {k: getattr(FLAGS, k) for k in
                 ("d_model", "ffn_dim", "num_heads", "encoder_layers", "decoder_layers")}
    from tfnmt.data.tokenizer import load_tokenizer

    if not FLAGS.vocab:
        raise UserError("--vocab is required (train one with python -m tfnmt.vocab).")
    source_vocab = load_tokenizer(FLAGS.vocab).vocab_size
    target_vocab = load_tokenizer(FLAGS.target_vocab).vocab_size if FLAGS.target_vocab else 0
    model = config_lib.ModelConfig.from_shape(
        FLAGS.shape, architecture=FLAGS.architecture, vocab_size=source_vocab,
        target_vocab_size=target_vocab, dropout=FLAGS.dropout,
        attention_dropout=FLAGS.attention_dropout, pre_norm=FLAGS.pre_norm,
        share_embeddings=FLAGS.share_embeddings and not FLAGS.target_vocab,
        tie_output=FLAGS.tie_output, max_length=FLAGS.model_max_length,
        decoder_hidden=FLAGS.decoder_hidden, attention=FLAGS.attention,
        attention_units=FLAGS.attention_units, nat_attend_self=FLAGS.nat_attend_self,
        num_actions=FLAGS.num_actions, nat_copy=FLAGS.nat_copy)
    if os.path.isfile(os.path.join(FLAGS.run_dir or "", runs.CONFIG)):
        existing = runs.load(FLAGS.run_dir).model
        if model.nat and FLAGS.nat_attend_self is None:
            model.nat.attend_self = existing.nat.attend_self  # the run's own
        if existing.encoder_attention_dropout != existing.attention_dropout:
            # A run from before 2026-12-03 keeps its encoder's rate (config.py).
            model.encoder_attention_dropout = existing.encoder_attention_dropout
    model = config_lib.replace(model, **overrides)
    model.validate()
    if FLAGS.max_length > FLAGS.model_max_length:
        raise UserError(f"--max_length {FLAGS.max_length} exceeds --model_max_length "
                        f"{FLAGS.model_max_length}.")
    data = config_lib.DataConfig(
        train_source=FLAGS.train_source, train_target=FLAGS.train_target,
        train_distilled=FLAGS.train_distilled,
        valid_source=FLAGS.valid_source, valid_target=FLAGS.valid_target,
        source_vocab=FLAGS.vocab, target_vocab=FLAGS.target_vocab, max_length=FLAGS.max_length,
        long_pairs=FLAGS.long_pairs, batch_tokens=FLAGS.batch_tokens,
        shuffle_buffer=FLAGS.shuffle_buffer, seed=FLAGS.seed)
    train = methods.train_config(
        model, train_steps=FLAGS.train_steps, learning_rate=FLAGS.learning_rate,
        warmup_steps=FLAGS.warmup_steps, clip_norm=FLAGS.clip_norm,
        label_smoothing=FLAGS.label_smoothing, accumulate_steps=FLAGS.accumulate_steps,
        mixed_precision=FLAGS.mixed_precision, xla=FLAGS.xla,
        xla_elementwise=FLAGS.xla_elementwise, save_every=FLAGS.save_every,
        keep_checkpoints=FLAGS.keep_checkpoints, log_every=FLAGS.log_every,
        eval_every=FLAGS.eval_every, eval_bleu_sentences=FLAGS.eval_bleu_sentences,
        patience=FLAGS.patience, seed=FLAGS.seed, init_from=FLAGS.init_from,
        objective=FLAGS.objective,
        **{name: getattr(FLAGS, name) for name in [*config_lib.FLAT_TEACHER,
                                                   *methods.SETTING_NAMES]})
    warn_unread(model, train)
    if FLAGS.max_length < 2:
        raise UserError(f"--max_length must be at least 2 (a token and EOS), got "
                        f"{FLAGS.max_length}.")
    for name in ("train_steps", "warmup_steps", "batch_tokens", "save_every", "log_every",
                 "eval_every", "keep_checkpoints"):
        if getattr(FLAGS, name) <= 0:
            raise UserError(f"--{name} must be positive, got {getattr(FLAGS, name)}.")
    if FLAGS.learning_rate <= 0:
        raise UserError(f"--learning_rate must be positive, got {FLAGS.learning_rate}.")
    return model, data, train


def warn_unread(model, train):
    """One warning line for flags given that this run's architecture and method do not read."""
    read = {flat for flat, (section, _) in config_lib.FLAT_MODEL.items()
            if getattr(model, section) is not None}
    read |= set(config_lib.FLAT_TEACHER) if train.teacher else {"teacher_run"}
    read |= {f.name for f in dataclasses.fields(train.settings)} if train.settings else set()
    unread = sorted(name for name in [*config_lib.FLAT_MODEL, *config_lib.FLAT_TEACHER,
                                      *methods.SETTING_NAMES]
                    if name in FLAGS and FLAGS[name].present and name not in read)
    if unread:
        print(f"warning: architecture {model.architecture} with objective {train.objective} "
              f"does not read {', '.join('--' + n for n in unread)} (ignored).", file=sys.stderr,
              flush=True)


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    for name in ("run_dir", "train_source", "train_target"):
        if not getattr(FLAGS, name):
            raise UserError(f"--{name} is required.")
    if bool(FLAGS.valid_source) != bool(FLAGS.valid_target):
        raise UserError("--valid_source and --valid_target go together.")
    from tfnmt.training.trainer import cluster_elementwise, Trainer

    if FLAGS.xla_elementwise and not FLAGS.xla and cluster_elementwise():
        # TensorFlow has read TF_XLA_FLAGS by now (absl's app.run makes it): start again with
        # it set (the same process id, so signals and the run's lock are unaffected).
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "tfnmt.train", *sys.argv[1:]])
    # The strategy first: multi-worker collectives must be configured before any TF op runs.
    strategy = make_strategy(FLAGS.distribution, FLAGS.devices, FLAGS.tpu)
    model, data, train = configs_from_flags()

    if model.architecture == "nart":  # C of N = M + C, measured on what the model learns
        from tfnmt.data.pipeline import measure_length_offset

        model.nat.length_offset = measure_length_offset(data)
    run = runs.prepare(FLAGS.run_dir, model, data, train, FLAGS.allow_config_change)
    trainer = Trainer(run, strategy)
    print(f"training {model.architecture} ({trainer.model.count_params():,} parameters) on "
          f"{strategy.num_replicas_in_sync} replica(s); run directory {os.path.abspath(FLAGS.run_dir)}",
          flush=True)
    step = trainer.train(max_steps=FLAGS.stop_after)
    if trainer.stopped_by is not None:  # the shell's convention: 128 + the signal number
        print(f"stopped at step {step}; weights fingerprint {trainer.fingerprint()}", flush=True)
        sys.exit(128 + trainer.stopped_by)
    print(f"finished at step {step}; weights fingerprint {trainer.fingerprint()}", flush=True)


if __name__ == "__main__":
    run_main(main)
