"""The one custom training loop under tf.distribute that every method trains with.

A method supplies an objective (callable(model, batch, training) -> dict of sums with "loss" and
"tokens"); the loop normalises by the global number of target tokens, all-reduces, clips by the
global norm, applies Adam, checkpoints, validates and logs.
"""

import fcntl
import json
import os
import random
import shutil
import signal
import time

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from tfnmt import methods, runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import UserError
from tfnmt.core.progress import duration
from tfnmt.core.provenance import BFLOAT16_CPU_FLAGS, cpu_flags, provenance
from tfnmt.data import corpus
from tfnmt.data.pipeline import make_dataset
from tfnmt.inference.translator import resolve_method, Translator
from tfnmt.models import build_model, fingerprint, named_weights
from tfnmt.runs import packing, records
from tfnmt.training.schedule import InverseSquareRoot
from tfnmt.training.strategy import is_chief

PRECISIONS = ("float32", "mixed_bfloat16")
LOCK = packing.LOCK


def set_seed(seed):
    """Seeds Keras initialisers (they draw from Python's random) and numpy. Not
    tf.random.set_seed: it clears TF's eager kernel cache, and with it tensorflow_text's
    kernel-owned SentencePiece resources."""
    random.seed(seed)
    np.random.seed(seed)


def seed_variables(model):
    """Dropout seed-generator states: tf.train.Checkpoint(model=...) does not track them."""
    return [v.value for v in model.non_trainable_variables if "seed_generator" in v.path]


def worker_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0
    return resolver.task_id + (1 if resolver.task_type == "worker" and
                               "chief" in resolver.cluster_spec().as_dict() else 0)


# TensorFlow's auto-clustering, limited to the ops XLA fuses (element-wise, reductions); CPU
# graphs need the global switch. Matrix products stay outside the clusters.
ELEMENTWISE_CLUSTERS = "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=FUSIBLE"


def cluster_elementwise():
    """Turns on XLA auto-clustering of the fusible ops for every function not compiled whole
    (jit_compile unset), for the rest of the process; True if TF_XLA_FLAGS changed. TensorFlow
    reads that variable once and early (absl's app.run already makes it), so this works in a
    library process that has run nothing yet; the tfnmt.train command starts again after it."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if ELEMENTWISE_CLUSTERS in flags:
        return False
    os.environ["TF_XLA_FLAGS"] = f"{flags} {ELEMENTWISE_CLUSTERS}".strip()
    return True


class Trainer:
    def __init__(self, run: runs.Run, strategy, objective=None, log=None):
        self.run, self.strategy = run, strategy
        self.log = log or (lambda message: print(message, flush=True))
        cfg = run.train
        if cfg.mixed_precision not in PRECISIONS:
            raise UserError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got "
                            f"{cfg.mixed_precision!r}.")
        if cfg.xla_elementwise:
            if cfg.xla:
                raise UserError("--xla_elementwise is for training without --xla (which "
                                "compiles the whole step); add --noxla.")
            cluster_elementwise()
        if cfg.accumulate_steps < 1:
            raise UserError(f"accumulate_steps must be positive, got {cfg.accumulate_steps}.")
        corpus.check_parallel(run.data.train_source, run.data.train_target)
        if run.data.valid_source:
            corpus.check_parallel(run.data.valid_source, run.data.valid_target)
        self.chief = is_chief(strategy)
        self.worker = worker_index(strategy)
        self.source_tokenizer, self.target_tokenizer = run.tokenizers()

        set_seed(cfg.seed)
        self._warn_if_bfloat16_is_slow()
        keras.mixed_precision.set_global_policy(cfg.mixed_precision)
        try:
            with strategy.scope():
                self.model = build_model(run.model)
                self.optimizer = keras.optimizers.Adam(
                    InverseSquareRoot(cfg.learning_rate, cfg.warmup_steps), beta_1=cfg.adam_beta1,
                    beta_2=cfg.adam_beta2, epsilon=cfg.adam_epsilon)
                # Keras 3: build the optimizer before the first step and before restoring, or
                # the first distributed step fails and a restore silently drops its slots.
                self.optimizer.build(self.model.trainable_variables)
                self.rng = tf.random.Generator.from_seed(cfg.seed)
                # Validation draws (HRT/CMLM masks) from its own generator, reset each time, so
                # a validation neither moves the checkpointed training RNG nor varies.
                self.valid_rng = tf.random.Generator.from_seed(cfg.seed + 1)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.objective = objective or self._default_objective()

        # The Keras variables, which the optimizer tracks too: each weight is saved once (with
        # tf.Variables here, the optimizer's copy made checkpoints 4 weight-sizes, not 3;
        # checkpoints of that layout restore alike).
        self.checkpoint = tf.train.Checkpoint(weights=named_weights(self.model, tracked=True),
                                              optimizer=self.optimizer,
                                              seeds=seed_variables(self.model), rng=self.rng)
        ckpt_dir = run.checkpoint_dir if self.chief else os.path.join(
            run.run_dir, "tmp", f"worker_{self.worker}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, cfg.keep_checkpoints,
                                                  step_counter=self.optimizer.iterations)
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(weights=named_weights(self.model)),
            os.path.join(run.checkpoint_dir if self.chief else ckpt_dir, "best"), 1)
        self._writer = None  # created with the first summary: a failed start writes nothing
        self._train_step = self._make_train_step()
        self._translator = None
        self._valid_step = None  # validation_loss's tf.function, built on first use
        self.stopped_by = None  # the signal that stopped training, if one did
        self._last_saved = 0

    def _warn_if_bfloat16_is_slow(self):
        """mixed_bfloat16 on CPUs without bfloat16 instructions trains slower than float32
        (0.44x on an AVX2-only EPYC, docs/decisions.md): say so once, train as asked."""
        flags = cpu_flags()
        on_cpu = not any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))
        if (self.run.train.mixed_precision == "mixed_bfloat16" and on_cpu and flags is not None
                and not flags.intersection(BFLOAT16_CPU_FLAGS)):
            self.log("warning: --mixed_precision=mixed_bfloat16 on a CPU without bfloat16 "
                     f"instructions ({' or '.join(BFLOAT16_CPU_FLAGS)}) trains slower than "
                     "float32; --mixed_precision=float32 is faster here.")

    def _default_objective(self):
        """The run's method builds its objective (methods.of_run)."""
        return methods.of_run(self.run.model, self.run.train).build_objective(methods.Context(
            self.run, self.target_tokenizer, self.optimizer.iterations, self.rng,
            self._load_teacher, self.log))

    def _load_teacher(self):
        """The frozen teacher (KD, hints) or demonstrator (imitation) and its checkpoint path."""
        cfg = self.run.train.teacher
        teacher_run = runs.load(cfg.run)
        runs.check_same_vocabularies(self.run, teacher_run, "teacher")
        # Frozen, it only runs forward: beside a mixed-bfloat16 student, in bfloat16 (weights and
        # products), which its signals are consumed at anyway.
        precision = "bfloat16" if self.run.train.mixed_precision == "mixed_bfloat16" else "float32"
        with self.strategy.scope():
            teacher, path = runs.restore_model(teacher_run, cfg.checkpoint, precision)
        teacher.trainable = False
        return teacher, path

    def initialise_from(self, value):
        """Starts a fresh run from another run's weights, "run_dir[@checkpoint]" (best by
        default; runs.restore_shared_weights). The two runs must share their vocabularies."""
        run_dir, which = runs.split_checkpoint(value)
        runs.check_same_vocabularies(self.run, runs.load(run_dir), "--init_from run")
        path, fresh = runs.restore_shared_weights(self.model, run_dir, which)
        if fresh:  # by layer: a 6-1 from a 3-3 teacher starts 48 weights fresh
            groups = {}
            for name in fresh:
                groups.setdefault(".".join(name.split(".")[:2]), []).append(name)
            self.log(f"{len(fresh)} weights not in {path} start fresh: " + ", ".join(
                names[0] if len(names) == 1 else f"{prefix}.* ({len(names)})"
                for prefix, names in groups.items()))
        self.log(f"initialised from {path}")

    def training_iterator(self, step):
        """Iterator over the training batches, positioned after `step` completed steps."""
        run, strategy = self.run, self.strategy

        def dataset_fn(ctx):
            replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return make_dataset(run.data.train_source, run.data.train_target, run.source_vocab,
                                run.target_vocab, run.data, training=True, input_context=ctx,
                                skip_batches=step * run.train.accumulate_steps * replicas)

        return iter(strategy.distribute_datasets_from_function(dataset_fn))

    # -- steps ----------------------------------------------------------------------------------
    def _make_train_step(self):
        cfg, model, objective = self.run.train, self.model, self.objective
        variables = model.trainable_variables

        def forward_backward(batch):
            with tf.GradientTape() as tape:
                terms = objective(model, batch, training=True)
            return tape.gradient(terms["loss"], variables), terms

        # Without --xla, jit_compile stays unset (not False), so --xla_elementwise's clusters
        # can form.
        forward_backward = tf.function(forward_backward, jit_compile=cfg.xla or None,
                                       autograph=False)

        def replica_step(batches):
            ctx = tf.distribute.get_replica_context()
            grads, sums = None, None
            for batch in batches:
                g, terms = forward_backward(batch)
                grads = g if grads is None else [a + b for a, b in zip(grads, g)]
                sums = terms if sums is None else {k: sums[k] + terms[k] for k in sums}
            # Losses are sums: one division by the tokens of the global batch (all replicas,
            # all micro-batches) gives the same update for any replica count or accumulation.
            tokens = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums["tokens"])
            grads = [g / tf.maximum(tokens, 1.0) for g in
                     ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)]
            state = getattr(objective, "state_keys", ())
            if state:  # statistics the objective keeps (DAT's c): one all-reduced update
                objective.update_state(model, {k: ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                                                 sums.pop(k)) for k in state})
            norm = tf.linalg.global_norm(grads)
            if cfg.clip_norm > 0:
                grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm, use_norm=norm)
            # Keras' optimizer sums gradients over replicas again: hand it each replica's share.
            share = 1.0 / ctx.num_replicas_in_sync
            self.optimizer.apply_gradients([(g * share, v) for g, v in zip(grads, variables)])
            return dict(sums, grad_norm=norm / ctx.num_replicas_in_sync)

        @tf.function(autograph=False)
        def train_step(iterator):
            batches = [next(iterator) for _ in range(cfg.accumulate_steps)]
            out = self.strategy.run(replica_step, args=(batches,))
            return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in out.items()}

        return train_step

    def validation_loss(self):
        """Token-level NLL and label-smoothed loss on the validation set (all replicas)."""
        data = self.run.data
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: make_dataset(data.valid_source, data.valid_target, self.run.source_vocab,
                                     self.run.target_vocab, data, training=False,
                                     input_context=ctx))

        training_rng = getattr(self.objective, "rng", None)
        if training_rng is not None:
            self.valid_rng.reset_from_seed(self.run.train.seed + 1)
            self.objective.rng = self.valid_rng

        if self._valid_step is None:  # traced once: later validations reuse its graphs

            # Never in --xla_elementwise's clusters: TensorFlow compiles a cluster at the second
            # call with each of the validation set's ~10 batch shapes, ~14 s a shape.
            @tf.function(reduce_retracing=True, autograph=False)
            def step(batch):
                state = getattr(self.objective, "state_keys", ())
                with tf.xla.experimental.jit_scope(compile_ops=False):
                    out = self.strategy.run(lambda b: {k: v for k, v in self.objective(
                        self.model, b, training=False).items() if k not in state}, args=(batch,))
                return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                        for k, v in out.items()}

            self._valid_step = step

        totals = {}
        try:
            for batch in dataset:
                for k, v in self._valid_step(batch).items():
                    totals[k] = totals.get(k, 0.0) + float(v)
        finally:
            if training_rng is not None:
                self.objective.rng = training_rng
        tokens = max(totals.get("tokens", 0.0), 1.0)
        return {k: v / tokens for k, v in totals.items() if k != "tokens"}

    def validation_bleu(self):
        cfg, data = self.run.train, self.run.data
        sources = corpus.read_lines(data.valid_source)[: cfg.eval_bleu_sentences]
        references = corpus.read_lines(data.valid_target)[: cfg.eval_bleu_sentences]
        if self._translator is None:  # built once: its compiled decode shapes are reused
            self._translator = Translator(
                self.model, self.source_tokenizer, self.target_tokenizer,
                resolve_method(DecodeConfig(beam_size=cfg.eval_beam_size, batch_size=64,
                                            xla=cfg.xla, method="auto"), self.run),
                self.run.model.max_length)
        hypotheses = [n_best[0][0] for n_best in self._translator.translate(sources)]
        return sacrebleu.corpus_bleu(hypotheses, [references]).score

    # -- checkpoints ----------------------------------------------------------------------------
    def restore(self):
        """Restores the newest intact checkpoint if any (warning about the unreadable ones it
        skips); returns the step it resumed at."""
        # From the index files, not the manager's list: the manager lists only checkpoints
        # whose state has a timestamp (a state file written by hand names them without one).
        paths = list(reversed(runs.training_checkpoints(self.manager.directory)))
        for path in paths:
            problem = runs.checkpoint_problem(path)
            if problem is None:
                try:
                    self.checkpoint.restore(path).assert_existing_objects_matched()
                    return int(self.optimizer.iterations.numpy())
                except runs.READ_ERRORS as e:
                    problem = str(e).strip().splitlines()[0][:200]
            self.log(f"warning: checkpoint {path} is unreadable ({problem}); trying an older one")
        if paths:
            raise UserError(f"no checkpoint of {self.run.checkpoint_dir} is readable; move the "
                            "directory away to start the run again.")
        return 0

    def check_has_batches(self):
        """One clear error instead of an endless wait when no training pair passes the length
        filter (the repeated dataset would otherwise search forever)."""
        data = self.run.data
        dataset = make_dataset(data.train_source, data.train_target, self.run.source_vocab,
                               self.run.target_vocab, data, training=False)
        if next(iter(dataset.take(1)), None) is None:
            raise UserError(f"no training pair of {data.train_source} fits max_length "
                            f"{data.max_length} (tokens per side, EOS included); raise "
                            "--max_length or pass --long_pairs=truncate.")

    def lock(self):
        """An exclusive lock on the run directory while train() runs (the kernel releases it
        when the process ends, so a crash leaves no stale lock)."""
        os.makedirs(self.run.run_dir, exist_ok=True)
        self._lock_file = open(os.path.join(self.run.run_dir, LOCK), "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            raise UserError(f"{self.run.run_dir} is being trained by {holder}; wait for it or "
                            "stop it first.") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"pid {os.getpid()}\n")
        self._lock_file.flush()

    def save(self, scheduled=True):
        """A scheduled save (every save_every steps, the last step) joins the kept checkpoints;
        a stop between them saves into checkpoints/resume instead, which the next scheduled
        save empties: a stopped and resumed run keeps (and averages) an uninterrupted run's."""
        self._last_saved = int(self.optimizer.iterations.numpy())
        resume = os.path.join(self.manager.directory, runs.RESUME)
        manager = self.manager if scheduled else tf.train.CheckpointManager(
            self.checkpoint, resume, max_to_keep=1)
        path = manager.save(checkpoint_number=self._last_saved)
        if not self.chief:  # other workers write a throw-away copy (collectives need them all)
            tf.io.gfile.rmtree(os.path.dirname(path))
        elif scheduled and os.path.isdir(resume):
            shutil.rmtree(resume)
        return path

    # -- loop -----------------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        """SIGTERM or the first Ctrl-C: finish the step, save, stop. A second Ctrl-C stops at
        once (KeyboardInterrupt), losing at most the steps since the last checkpoint."""
        del frame
        self.stopped_by = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def train(self, max_steps=None):
        """Trains to cfg.train_steps (or max_steps more steps); returns the final step. A run
        directory this call made is removed again if training never started (no config.json:
        a bad corpus, say), so the failed command leaves nothing to clean up."""
        if packing.is_packed(self.run.run_dir):
            raise UserError(f"{self.run.run_dir} is a packed run (weights only, no optimizer "
                            "state): it cannot resume training; train a new run, with "
                            f"--init_from={self.run.run_dir}@averaged to start from its weights.")
        made_dir = self.chief and not os.path.exists(self.run.run_dir)
        if self.chief:
            self.lock()
        try:
            return self._train(max_steps)
        finally:
            if self.chief:
                self._lock_file.close()
                if made_dir and not os.path.exists(os.path.join(self.run.run_dir, runs.CONFIG)):
                    shutil.rmtree(self.run.run_dir, ignore_errors=True)

    def _train(self, max_steps):
        cfg = self.run.train
        step = self.restore()
        self._last_saved = step
        self.check_has_batches()
        if not step and cfg.init_from:  # a wrong --init_from fails before the run exists
            self.initialise_from(cfg.init_from)
        if self.chief and not os.path.exists(os.path.join(self.run.run_dir, runs.CONFIG)):
            runs.save_config(self.run)  # training really starts: the run exists from now on
        if step:
            self.log(f"resumed from step {step}")
        iterator = self.training_iterator(step)
        first_step = step
        end = cfg.train_steps if max_steps is None else min(cfg.train_steps, step + max_steps)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        best_file = os.path.join(self.best_manager.directory, "score.txt")
        best = float(open(best_file).read()) if os.path.isfile(best_file) else -np.inf
        history = self.validation_history(step)
        if self.converged(history):
            self.log(f"converged: no better validation score in the last {cfg.patience} "
                     f"evaluations (see {records.VALIDATIONS})")
            end = step
        window = {"loss": 0.0, "nll": 0.0, "tokens": 0.0}
        start_time = last_time = time.time()
        timed_from = None  # (time, step) after the first step: compilation is not training speed
        try:
            while step < end and self.stopped_by is None:
                out = self._train_step(iterator)
                step += 1
                for k in window:
                    window[k] += float(out[k])
                if timed_from is None:  # the first step compiles: time training from its end
                    timed_from = (time.time(), step)
                    last_time, timed_tokens = timed_from[0], 0.0
                else:
                    timed_tokens += float(out["tokens"])
                if step % cfg.log_every == 0 or step == end:
                    now = time.time()
                    tokens = max(window["tokens"], 1.0)
                    lr = float(self.optimizer.learning_rate)
                    stats = {"loss": window["loss"] / tokens, "nll": window["nll"] / tokens,
                             "learning_rate": lr,
                             "tokens_per_second": timed_tokens / max(now - last_time, 1e-9),
                             "grad_norm": float(out["grad_norm"])}
                    per_step = (now - timed_from[0]) / max(step - timed_from[1], 1)
                    self.log(f"step {step}/{end} | loss {stats['loss']:.3f} | "
                             f"nll {stats['nll']:.3f} | lr {lr:.2e} | "
                             f"{stats['tokens_per_second']:.0f} tok/s | "
                             f"{now - start_time:.0f}s | {duration((end - step) * per_step)} "
                             "left at most")
                    self._summaries("train", stats, step)
                    window, timed_tokens = {k: 0.0 for k in window}, 0.0
                    last_time = now
                if step % cfg.save_every == 0 or step == end:
                    scheduled = step % cfg.save_every == 0 or step == cfg.train_steps
                    self.log(f"step {step} | saved {self.save(scheduled)}")
                if self.run.data.valid_source and (step % cfg.eval_every == 0 or step == end):
                    valid = self.validation_loss()
                    if cfg.eval_bleu_sentences > 0:
                        valid["bleu"] = self.validation_bleu()
                    self._summaries("valid", valid, step)
                    self.log(f"step {step} | validation " +
                             " | ".join(f"{k} {v:.3f}" for k, v in sorted(valid.items())))
                    score = valid.get("bleu", -valid["nll"])
                    if score > best:
                        best = score
                        self.best_manager.save(checkpoint_number=step)
                        if self.chief:
                            corpus.write_atomic(best_file, f"{score}\n")
                    history.append(dict(step=step, score=score, **valid))
                    if self.chief:
                        corpus.write_atomic(os.path.join(self.run.run_dir, records.VALIDATIONS),
                                            json.dumps(history, indent=1) + "\n")
                    if self.converged(history):
                        if step % cfg.save_every:
                            self.save()
                        self.log(f"step {step} | converged: no better validation score in "
                                 f"{cfg.patience} evaluations; stopping")
                        break
                    last_time = time.time()
            if self.stopped_by is not None:
                if self._last_saved != step:
                    self.save(scheduled=False)
                self.log(f"stopped by {signal.Signals(self.stopped_by).name} at step {step}; "
                         "checkpoint saved (the same command resumes)")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.chief and self._last_saved > first_step:  # what a resume starts from
                self._record_segment(first_step, self._last_saved, time.time() - start_time)
        return step

    def validation_history(self, step):
        """The validations up to `step` (a list of {"step", "score", ...}, oldest first)."""
        history = records.read(self.run.run_dir, records.VALIDATIONS, [])
        return [entry for entry in history if entry["step"] <= step]

    def converged(self, history):
        """True when --patience evaluations in a row have not beaten the best before them,
        none of them before the objective stops changing (records.patience_from)."""
        return records.converged(history, self.run.train.patience,
                                 records.patience_from(self.run.train))

    def _record_segment(self, first_step, last_step, seconds):
        """Appends this process's share of training to run_dir/training.json."""

        segments = records.read(self.run.run_dir, records.SEGMENTS, [])
        where = provenance()
        segments.append({"from_step": first_step, "to_step": last_step,
                         "wall_seconds": round(seconds, 1),
                         **{k: where[k] for k in ("command", "git_commit", "cpu", "cpu_threads")},
                         "replicas": self.strategy.num_replicas_in_sync,
                         "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        corpus.write_atomic(os.path.join(self.run.run_dir, records.SEGMENTS),
                            json.dumps(segments, indent=2) + "\n")

    def fingerprint(self):
        return fingerprint(self.model)

    def _summaries(self, prefix, values, step):
        if self._writer is None:
            self._writer = (tf.summary.create_file_writer(
                os.path.join(self.run.run_dir, "tensorboard")) if self.chief
                else tf.summary.create_noop_writer())
        with self._writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(f"{prefix}/{k}", v)
