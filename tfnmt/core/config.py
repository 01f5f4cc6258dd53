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
class GRUConfig:
    """The GRU decoder (architectures hybrid and rnmt)."""
    hidden: int = 512
    attention: str = "additive"  # additive, dot or multihead
    attention_units: int = 0  # additive/dot attention size; 0: hidden


@dataclasses.dataclass
class NATConfig:
    """The non-autoregressive decoders (architectures nart and imitate_nat)."""
    # Whether a position attends to itself in NAT self-attention; None: the architecture's own
    # choice, fixed when the config is made (NAT_ATTEND_SELF).
    attend_self: bool | None = None
    length_offset: float = 0.0  # C of N = M + C: mean target-minus-source length on training data


@dataclasses.dataclass
class ImitationConfig:
    """The imitation module (architectures dat and imitate_nat)."""
    # action categories n; 0 (a learner only): no imitation module, the paper's competitor
    # "without imitation module" (its Table 2's w/o rows)
    num_actions: int = 512
    copy: str = "soft"  # imitate_nat decoder inputs: soft (SoftCopy) or uniform (UniformCopy)


# ModelConfig's sections: {field: (class, the architectures that read it)}. A config holds only
# the sections its architecture reads (the others are None and absent from config.json).
MODEL_SECTIONS = {"gru": (GRUConfig, ("hybrid", "rnmt")),
                  "nat": (NATConfig, ("nart", "imitate_nat")),
                  "imitation": (ImitationConfig, ("dat", "imitate_nat"))}
# The flat names of section fields (the training flags, and config.json before sections):
# {flat name: (section, field)}.
FLAT_MODEL = {"decoder_hidden": ("gru", "hidden"), "attention": ("gru", "attention"),
              "attention_units": ("gru", "attention_units"),
              "nat_attend_self": ("nat", "attend_self"),
              "length_offset": ("nat", "length_offset"),
              "num_actions": ("imitation", "num_actions"), "nat_copy": ("imitation", "copy")}


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
    # None: attention_dropout. Runs of tfnmt before 2026-12-03 had the encoder's attention
    # dropout at `dropout` (runs.load keeps it so for them).
    encoder_attention_dropout: float | None = None
    pre_norm: bool = True
    share_embeddings: bool = True  # source and target embeddings are one table
    tie_output: bool = True  # output projection is the target embedding transposed
    max_length: int = 256  # longest sequence (tokens, EOS included) the model handles
    gru: GRUConfig | None = None
    nat: NATConfig | None = None
    imitation: ImitationConfig | None = None

    def __post_init__(self):
        for name, (cls, architectures) in MODEL_SECTIONS.items():
            value = getattr(self, name)
            if self.architecture not in architectures:
                value = None
            elif value is None:
                value = cls()
            elif isinstance(value, dict):
                value = from_dict(cls, value)
            setattr(self, name, value)
        if self.encoder_attention_dropout is None:
            self.encoder_attention_dropout = self.attention_dropout
        if self.nat is not None and self.nat.attend_self is None:
            self.nat.attend_self = NAT_ATTEND_SELF[self.architecture]

    @classmethod
    def from_flat(cls, **values) -> "ModelConfig":
        """From flat names (FLAT_MODEL: the flags, config.json before sections)."""
        return cls(**nest_model(values))

    @classmethod
    def from_shape(cls, shape: str, **kwargs) -> "ModelConfig":
        """A shape preset (SHAPES) with other fields by their flat names (from_flat)."""
        if shape not in SHAPES:
            raise UserError(f"unknown model shape {shape!r}; choose one of {', '.join(SHAPES)}.")
        d, ffn, heads, enc, dec = SHAPES[shape]
        return cls.from_flat(d_model=d, ffn_dim=ffn, num_heads=heads, encoder_layers=enc,
                             decoder_layers=dec, **kwargs)

    @property
    def output_vocab_size(self) -> int:
        return self.target_vocab_size or self.vocab_size

    def validate(self):
        for name in ("d_model", "ffn_dim", "num_heads", "encoder_layers", "decoder_layers"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.d_model % self.num_heads:
            raise UserError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}.")
        if self.share_embeddings and self.target_vocab_size not in (0, self.vocab_size):
            raise UserError("share_embeddings needs one joint vocabulary for source and target.")
        if self.gru and self.gru.attention not in ("additive", "dot", "multihead"):
            raise UserError(f"attention must be additive, dot or multihead, got "
                            f"{self.gru.attention!r}.")
        if self.imitation and self.imitation.num_actions < (self.architecture == "dat"):
            raise UserError(f"num_actions must be at least {int(self.architecture == 'dat')} "
                            f"for {self.architecture}, got {self.imitation.num_actions}.")
        if self.imitation and self.imitation.copy not in ("soft", "uniform"):
            raise UserError(f"nat_copy must be soft or uniform, got {self.imitation.copy!r}.")
        for name in ("dropout", "attention_dropout", "encoder_attention_dropout"):
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
    # Without xla: XLA compiles only the element-wise ops (auto-clustering); matrix products
    # stay TensorFlow's (oneDNN: bfloat16 on AMX cores, which XLA's CPU dots do not use).
    xla_elementwise: bool = False
    save_every: int = 1000
    keep_checkpoints: int = 5
    log_every: int = 100
    eval_every: int = 1000
    eval_bleu_sentences: int = 500  # validation sentences decoded for BLEU (0: none)
    eval_beam_size: int = 1
    patience: int = 0  # stop after this many validations without a better score (0: never)
    seed: int = 1234
    init_from: str = ""  # run_dir[@checkpoint]: a fresh run starts from its weights (best)
    objective: str = "mle"  # mle (with KD when there is a teacher), hrt, cmlm or hint
    teacher: "TeacherConfig | None" = None  # a frozen teacher (KD, hints, imitation)
    # The training settings only the run's method reads: its Settings (tfnmt/methods), or None.
    settings: object = None

    def __post_init__(self):
        if isinstance(self.teacher, dict):
            self.teacher = from_dict(TeacherConfig, self.teacher)


@dataclasses.dataclass
class TeacherConfig:
    run: str = ""  # the teacher's run directory
    checkpoint: str = "best"  # which of its checkpoints: best, latest, averaged
    kd_lambda: float = 1.0  # weight of the word-level KL term (Hybrid paper, Eq. 1)
    kd_label_smoothing: float = 0.0  # on the NLL beside the KL (Eq. 1 has the plain NLL)


# The flat names of TeacherConfig's fields (the flags, config.json before sections).
FLAT_TEACHER = {"teacher_run": "run", "teacher_checkpoint": "checkpoint",
                "kd_lambda": "kd_lambda", "kd_label_smoothing": "kd_label_smoothing"}


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
    # ("total") log-probability (under the rescorer when there is one). None: the method's.
    nat_selection: str | None = "normalized"
    # nat: each candidate's repeated consecutive tokens kept once, before it is scored.
    collapse_repeats: bool = False
    # nat: an AT run that rescores the candidates ("": the NAT itself). None: the run's teacher
    # when the method decodes its own way (the hint-based NART's teacher, imitate-NAT's DAT
    # demonstrator: both papers rescore with it), at the teacher's checkpoint unless
    # rescore_checkpoint is given; "" for a run without one.
    rescore_run: str | None = ""
    rescore_checkpoint: str | None = "best"  # None: the teacher's checkpoint, else best
    # Weights and matmuls at decode time: float32, bfloat16 (oneDNN runs its matmuls natively
    # on CPUs with AVX-512 BF16 / AMX; XLA on CPU does not) or int8 (Keras quantization).
    precision: str = "float32"
    # Decode over the union of the batch's lexical shortlists (<run_dir>/shortlist.npz, made by
    # python -m tfnmt.shortlist) instead of the whole target vocabulary.
    shortlist: bool = False


def to_json(obj) -> str:
    return json.dumps(dataclasses.asdict(obj), indent=2, sort_keys=True)


def from_dict(cls, values: dict):
    """`cls` from a dict of its fields (sections as dicts); keys it lacks are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def nest_model(values: dict) -> dict:
    """ModelConfig values with flat names (FLAT_MODEL) moved into their sections; the sections
    the architecture does not read are dropped. Other keys are kept as they are."""
    values, sections = dict(values), {}
    for flat, (section, name) in FLAT_MODEL.items():
        if flat in values:
            sections.setdefault(section, {})[name] = values.pop(flat)
    architecture = values.get("architecture", ModelConfig.architecture)
    for section, fields in sections.items():
        if architecture in MODEL_SECTIONS[section][1]:
            values[section] = {**fields, **values.get(section, {})}
    return values


def key_differences(expected: dict, values: dict, prefix=""):
    """(unknown keys, {missing key: the default it gets}) of `values` against `expected` (the
    asdict of a config with today's defaults); sections are compared key by key, named
    "section.key". A section the config does not read (None in `expected`) is unknown."""
    unknown, missing = [], {}
    for key in sorted(set(values) | set(expected)):
        name, want = prefix + key, expected.get(key)
        if key not in expected or (want is None and isinstance(values.get(key), dict)):
            unknown.append(name)
        elif key not in values:
            if want is not None:
                missing[name] = want
        elif isinstance(want, dict) and isinstance(values[key], dict):
            more_unknown, more_missing = key_differences(want, values[key], name + ".")
            unknown += more_unknown
            missing.update(more_missing)
    return unknown, missing


def replace(obj, **changes):
    return dataclasses.replace(obj, **{k: v for k, v in changes.items() if v is not None})
