"""Typed configuration objects. Flags are parsed only in entry points, which build these."""

import dataclasses
import json

from tfnmt.core.errors import UserError

# Model shapes: (d_model, ffn_dim, num_heads, encoder_layers, decoder_layers).
SHAPES = {
    "base": (512, 2048, 8, 6, 6),
    "4-4": (512, 2048, 8, 4, 4),
    "12-1": (512, 2048, 8, 12, 1),
    "6-1": (512, 2048, 8, 6, 1),
    "4-1": (512, 2048, 8, 4, 1),
    "small": (256, 1024, 4, 3, 3),
    "small-6-1": (256, 1024, 4, 6, 1),
    "small-12-1": (256, 1024, 4, 12, 1),
    "tiny": (32, 64, 2, 1, 1),
}


# Each NAT decoder's self-attention default. The hint-based NART's public code keeps a
# position from attending to itself (and it trained better so on Multi30k, see docs/decisions.md); the
# imitate-NAT learner is the DAT's decoder without the causal mask, which always saw itself.
NAT_ATTEND_SELF = {"nart": False, "imitate_nat": True}


@dataclasses.dataclass
class ModelConfig:
    architecture: str = "transformer"
    vocab_size: int = 0
    target_vocab_size: int = 0  # 0: same vocabulary as the source
    d_model: int = 256
    ffn_dim: int = 1024
    num_heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0
    pre_norm: bool = True
    share_embeddings: bool = True  # source and target embeddings are one table
    tie_output: bool = True  # output projection is the target embedding transposed
    max_length: int = 256  # longest sequence (tokens, EOS included) the model handles
    # GRU decoder (architectures hybrid and rnmt).
    decoder_hidden: int = 512
    attention: str = "additive"  # additive, dot or multihead
    attention_units: int = 0  # additive/dot attention size; 0: decoder_hidden
    # Non-autoregressive decoder (architecture nart).
    # Whether a position attends to itself in NAT self-attention; None: the method's own choice,
    # fixed when the config is made (NAT_ATTEND_SELF).
    nat_attend_self: bool | None = None
    length_offset: float = 0.0  # C of N = M + C: mean target-minus-source length on training data
    # imitate-NAT (architectures dat and imitate_nat).
    num_actions: int = 512  # action categories n of the imitation module
    nat_copy: str = "soft"  # imitate_nat decoder inputs: soft (SoftCopy) or uniform (UniformCopy)

    def __post_init__(self):
        if self.nat_attend_self is None:
            self.nat_attend_self = NAT_ATTEND_SELF.get(self.architecture, False)  # False: unused

    @classmethod
    def from_shape(cls, shape: str, **kwargs) -> "ModelConfig":
        if shape not in SHAPES:
            raise UserError(f"unknown model shape {shape!r}; choose one of {', '.join(SHAPES)}.")
        d, ffn, heads, enc, dec = SHAPES[shape]
        return cls(d_model=d, ffn_dim=ffn, num_heads=heads, encoder_layers=enc,
                   decoder_layers=dec, **kwargs)

    @property
    def output_vocab_size(self) -> int:
        return self.target_vocab_size or self.vocab_size

    def validate(self):
        if self.d_model % self.num_heads:
            raise UserError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}.")
        if self.share_embeddings and self.target_vocab_size not in (0, self.vocab_size):
            raise UserError("share_embeddings needs one joint vocabulary for source and target.")
        if self.attention not in ("additive", "dot", "multihead"):
            raise UserError(f"attention must be additive, dot or multihead, got "
                            f"{self.attention!r}.")
        if self.nat_copy not in ("soft", "uniform"):
            raise UserError(f"nat_copy must be soft or uniform, got {self.nat_copy!r}.")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {getattr(self, name)}.")


@dataclasses.dataclass
class DataConfig:
    train_source: str = ""
    train_target: str = ""
    train_distilled: str = ""  # distilled targets line-aligned with train_source (mixed KD)
    valid_source: str = ""
    valid_target: str = ""
    source_vocab: str = ""  # SentencePiece model
    target_vocab: str = ""  # empty: same as source_vocab
    max_length: int = 128  # tokens per side, EOS included
    long_pairs: str = "drop"  # "drop" or "truncate"
    batch_tokens: int = 4096  # token budget per replica (padded tokens of the longer side)
    shuffle_buffer: int = 100_000
    seed: int = 1234


@dataclasses.dataclass
class TrainConfig:
    train_steps: int = 20_000
    learning_rate: float = 1e-3  # peak, reached at the end of warm-up
    warmup_steps: int = 4000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-9
    clip_norm: float = 1.0  # global gradient norm; 0 disables
    label_smoothing: float = 0.1
    accumulate_steps: int = 1
    mixed_precision: str = "float32"  # float32, mixed_float16, mixed_bfloat16
    xla: bool = True  # compile the forward/backward pass with XLA
    save_every: int = 1000
    keep_checkpoints: int = 5
    log_every: int = 100
    eval_every: int = 1000
    eval_bleu_sentences: int = 500  # validation sentences decoded for BLEU (0: none)
    eval_beam_size: int = 1
    patience: int = 0  # stop after this many validations without a better score (0: never)
    seed: int = 1234
    teacher_run: str = ""  # knowledge distillation from this run (teacher frozen)
    teacher_checkpoint: str = "best"  # which of the teacher's checkpoints: best, latest, averaged
    kd_lambda: float = 1.0  # weight of the word-level KL term (Hybrid paper, Eq. 1)
    kd_label_smoothing: float = 0.0  # on the NLL beside the KL (Eq. 1 has the plain NLL)
    init_from: str = ""  # a fresh run starts from this run's best weights (fine-tuning)
    objective: str = "mle"  # mle (with KD when teacher_run is set), hrt, cmlm or hint
    hrt_chunk: int = 2  # HRT chunk size k
    # Hint-based NART (objective hint): L_nll + hint_lambda L_hid + hint_mu L_align. As in the
    # paper the weights make the three terms alike at initialisation; measured for the small
    # Multi30k teacher (results/hint_scales_multi30k_small.json): L_nll 8.74, L_hid 1.05,
    # L_align 1.99 per token, so lambda 8 and mu 4 (8.4 and 8.0).
    hint_lambda: float = 8.0
    hint_mu: float = 4.0
    gamma_st: float = 0.5  # L_hid penalises student pairs with cosine >= gamma_st ...
    gamma_tr: float = 0.5  # ... whose teacher cosine is <= gamma_tr
    # imitate-NAT: DAT loss L_AT + action_lambda L_pi with c <- action_alpha c + (1 - alpha) mean
    # pi; learner loss L_NAT + il_lambda L_IL + length_weight * length cross-entropy.
    action_lambda: float = 0.001
    action_alpha: float = 0.9
    il_lambda: float = 0.001
    length_weight: float = 0.1
    curriculum_lambda: float = 1.0  # HRT curriculum exponent (Eq. 2)
    p_raw: float = 0.2  # HRT mixed distillation: P(raw target); the paper's En<->De choice


@dataclasses.dataclass
class DecodeConfig:
    # None (from the decoding flags): the method's default (Method.decoding in tfnmt/methods).
    beam_size: int | None = 4  # autoregressive beam; for hrt the Skip-AT beam b_at
    length_penalty: float | None = 0.6  # alpha of GNMT's ((5 + |Y|) / 6) ** alpha; 0 disables
    max_length_a: float = 1.5  # per-sentence limit: a * source_length + b tokens
    max_length_b: int = 10
    n_best: int = 1
    batch_size: int = 32
    # > 0: batches of up to this many source tokens (padded), a power-of-two number of rows
    # per source width, instead of batch_size sentences.
    batch_tokens: int = 0
    xla: bool = True
    # autoregressive (greedy/beam), hrt (Skip-AT beam + one Skip-CMLM pass), mask_predict, nat;
    # "auto" picks the run's own (see inference.resolve_method).
    method: str = "autoregressive"
    hrt_chunk: int = 0  # hrt: chunk size k (0: the k the run was trained with)
    n_nat: int = 1  # hrt: Skip-AT hypotheses completed by Skip-CMLM (b_nat)
    iterations: int = 10  # mask_predict: refinement passes I
    length_beam: int = 5  # mask_predict: length candidates
    length_halfwidth: int | None = 0  # nat: decode lengths M + C - B .. M + C + B (B = halfwidth)
    # nat: the winning candidate has the best length-normalised ("normalized") or total
    # ("total") log-probability (under the rescorer when there is one).
    nat_selection: str = "normalized"
    rescore_run: str = ""  # nat: an AT run that rescores the candidates ("": the NAT itself)
    rescore_checkpoint: str = "best"
    # Weights and matmuls at decode time: float32, bfloat16 (oneDNN runs its matmuls natively
    # on CPUs with AVX-512 BF16 / AMX; XLA on CPU does not) or int8 (Keras quantization).
    precision: str = "float32"
    # Decode over the union of the batch's lexical shortlists (<run_dir>/shortlist.npz, made by
    # python -m tfnmt.shortlist) instead of the whole target vocabulary.
    shortlist: bool = False


def to_json(obj) -> str:
    return json.dumps(dataclasses.asdict(obj), indent=2, sort_keys=True)


def from_dict(cls, values: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def key_differences(cls, values: dict):
    """(unknown keys, {missing key: the default it gets}) of `values` against `cls`'s fields."""
    names, defaults = {f.name for f in dataclasses.fields(cls)}, dataclasses.asdict(cls())
    unknown = sorted(set(values) - names)
    missing = {name: defaults[name] for name in sorted(names - set(values))}
    return unknown, missing


def replace(obj, **changes):
    return dataclasses.replace(obj, **{k: v for k, v in changes.items() if v is not None})
