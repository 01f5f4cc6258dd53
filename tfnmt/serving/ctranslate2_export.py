"""CTranslate2 export of autoregressive Transformer runs (pre- or post-norm, tied or untied output,
shared or separate embeddings): python -m tfnmt.export --format=ctranslate2.

A version directory holds the CTranslate2 model (model.bin, config.json, vocabularies), the
run's SentencePiece models (source.model, target.model) and tfnmt.json (where it came from).
To decode as tfnmt's greedy search does, a caller
  * passes the source pieces WITHOUT "</s>": config.json sets add_source_eos, so CTranslate2
    appends it as tfnmt does (an explicit "</s>" would make two);
  * passes the options of `decoding_options(max_length)` to translate_batch: "<pad>" and "<s>"
    suppressed (tfnmt never produces them), EOS allowed at the first step (CTranslate2's
    min_decoding_length is 1 by default), sources truncated as tfnmt truncates them;
  * for tfnmt's per-sentence output limit, passes `max_decoding_length(pieces, max_length)`
    (CTranslate2 applies one limit to a whole batch: group sentences that share it). At the
    limit tfnmt appends EOS and CTranslate2 stops: the same tokens.
Greedy outputs are then identical. Beam search differs in its length normalisation
(CTranslate2: length ** length_penalty; tfnmt: GNMT's ((5 + length) / 6) ** alpha), so beam
outputs may too. score_batch(source pieces, target pieces) (neither with "<s>" nor "</s>")
returns tfnmt's teacher-forced per-token log-probabilities, EOS's last.
An HRT run (objective hrt) exports as the AT decoder it was also trained as: CTranslate2 has no
Skip-AT / Skip-CMLM decoding.
"""

import json
import math
import os
import shutil
import tempfile

import numpy as np

from tfnmt import runs
from tfnmt.core.errors import UserError
from tfnmt.core.provenance import git_commit
from tfnmt.models import named_weights
from tfnmt.serving.saved_model import next_version

# CTranslate2's weight types (ctranslate2.specs.model_spec.ACCEPTED_MODEL_TYPES), "none": keep
# the float32 weights. The bfloat16 ones need PyTorch at conversion time.
QUANTIZATIONS = ("none", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")
# tfnmt's decoders never emit these (tfnmt.decoding._allowed): CTranslate2 must not either.
SUPPRESSED_PIECES = ("<pad>", "<s>")
METADATA = "tfnmt.json"


def decoding_options(max_length):
    """translate_batch keyword arguments that make CTranslate2 decode as tfnmt does, for a run
    whose model handles `max_length` tokens (run.model.max_length). The exported sinusoid
    tables have max_length rows and CTranslate2 refuses later positions, so inputs are cut to
    max_length tokens with EOS (as tfnmt cuts them) and outputs to max_length - 1 before EOS."""
    return {"suppress_sequences": [[piece] for piece in SUPPRESSED_PIECES],
            "min_decoding_length": 0,
            "max_input_length": max_length,
            "max_decoding_length": max_length - 1}


def max_decoding_length(source_pieces, max_length, a=1.5, b=10):
    """tfnmt's output limit for one source (pieces without "</s>") as CTranslate2's
    max_decoding_length: tfnmt allows min(floor(a * (pieces + 1) + b), max_length) tokens,
    EOS included, so this many tokens before it."""
    tokens = min(len(source_pieces), max_length - 1) + 1  # tfnmt counts the source EOS
    return min(int(a * tokens + b), max_length) - 1


def check_convertible(run):
    """Raises a UserError unless the run is an autoregressive Transformer CTranslate2 can run."""
    if run.model.architecture != "transformer":
        raise UserError(f"{run.run_dir} is a {run.model.architecture!r} run; the CTranslate2 "
                        "export converts autoregressive Transformer runs (architecture "
                        "transformer) only.")


def import_ctranslate2(quantization=None):
    """The ctranslate2 module (an optional dependency), or a UserError saying how to get it."""
    try:
        import ctranslate2
    except ImportError:
        raise UserError("the CTranslate2 export needs the ctranslate2 package: pip install "
                        "ctranslate2 (or pip install tfnmt[ctranslate2]).") from None
    if quantization and "bfloat16" in quantization:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise UserError(f"--quantization={quantization} needs PyTorch to convert the "
                            "weights (pip install torch); float16 and int8_float16 do not.")
    return ctranslate2


def layer_norm_epsilon(model):
    """The one epsilon of every LayerNormalization in the model (CTranslate2 has one setting)."""
    import keras

    values = {layer.epsilon for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.LayerNormalization)}
    if len(values) != 1:
        raise UserError(f"the model's layer norms use several epsilons ({sorted(values)}); "
                        "CTranslate2 has one.")
    return values.pop()


def activation(model):
    """CTranslate2's activation enum for the feed-forward layers of encoder and decoder."""
    import keras
    from ctranslate2.specs import common_spec

    names = {keras.activations.serialize(layer.activation) for layer in model.encoder.layers_}
    names |= {layer.ffn.activation for layer in model.decoder_layers}
    known = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU}
    if len(names) != 1 or not names <= set(known):
        raise UserError(f"the model's feed-forward activations {sorted(names)} have no "
                        "CTranslate2 equivalent.")
    return known[names.pop()]


def position_table(embedder, length, d_model):
    """[length, d_model] sinusoids the model adds at positions 0 .. length-1, computed by the
    model's own layer (keras-hub interleaves sin and cos; CTranslate2's built-in table
    concatenates them, so the table is always passed explicitly)."""
    import tensorflow as tf

    table = embedder.position_encoding(tf.zeros([1, length, d_model]), start_index=0)
    return np.asarray(table[0], np.float32)


def vocabulary(tokenizer, size):
    """The SentencePiece pieces in id order; their number must be the embedding table's."""
    if tokenizer.vocab_size != size:
        raise UserError(f"the vocabulary has {tokenizer.vocab_size} pieces but the model's "
                        f"embedding table {size} rows.")
    return tokenizer.pieces(list(range(size)))


class Weights:
    """The model's named weights (tfnmt.models.named_weights) as float32 numpy arrays."""

    def __init__(self, model):

        self.values = named_weights(model)

    def __getitem__(self, name):
        return np.asarray(self.values[name].numpy(), np.float32)

    def __contains__(self, name):
        return name in self.values


def set_linear(spec, kernel, bias=None):
    """A Keras kernel [in, out] and bias [out] -> CTranslate2's weight [out, in] and bias."""
    spec.weight = np.ascontiguousarray(kernel.T)
    if bias is not None:
        spec.bias = np.ascontiguousarray(bias)


def dense(spec, weights, scope):
    """A keras Dense layer (kernel [in, out], bias [out]) at `scope`."""
    set_linear(spec, weights[f"{scope}.kernel"], weights[f"{scope}.bias"])


def layer_norm(spec, weights, scope):
    spec.gamma = weights[f"{scope}.gamma"]
    spec.beta = weights[f"{scope}.beta"]


def attention_projection(weights, scope, output=False):
    """A keras MultiHeadAttention projection at `scope` as (kernel [in, out], bias [out]): the
    query/key/value kernels are [d, H, D] and the output kernel (`output`) is [H, D, d]; heads
    stay contiguous blocks of D, which is CTranslate2's layout too."""
    kernel = weights[f"{scope}.kernel"]
    shape = (-1, kernel.shape[-1]) if output else (kernel.shape[0], -1)
    return kernel.reshape(shape), weights[f"{scope}.bias"].reshape(-1)


def set_encoder_layer(spec, weights, scope):
    """One keras-hub TransformerEncoder layer: Q, K and V fused into CTranslate2's [3d, d]."""
    attention = f"{scope}.self_attention_layer"
    parts = [attention_projection(weights, f"{attention}.{name}")
             for name in ("query", "key", "value")]
    set_linear(spec.self_attention.linear[0], np.concatenate([k for k, _ in parts], axis=1),
               np.concatenate([b for _, b in parts]))
    set_linear(spec.self_attention.linear[1],
               *attention_projection(weights, f"{attention}.attention_output", output=True))
    layer_norm(spec.self_attention.layer_norm, weights, f"{scope}.self_attention_layer_norm")
    layer_norm(spec.ffn.layer_norm, weights, f"{scope}.feedforward_layer_norm")
    dense(spec.ffn.linear_0, weights, f"{scope}.feedforward_intermediate_dense")
    dense(spec.ffn.linear_1, weights, f"{scope}.feedforward_output_dense")


def set_decoder_layer(spec, weights, scope):
    """One TransformerDecoderLayer: its fused QKV and KV projections already have
    CTranslate2's layout (q, k, v blocks of d, heads contiguous inside each)."""
    dense(spec.self_attention.linear[0], weights, f"{scope}.self_attention.qkv")
    dense(spec.self_attention.linear[1], weights, f"{scope}.self_attention.out")
    layer_norm(spec.self_attention.layer_norm, weights, f"{scope}.norm_0")
    dense(spec.attention.linear[0], weights, f"{scope}.cross_attention.q")
    dense(spec.attention.linear[1], weights, f"{scope}.cross_attention.kv")
    dense(spec.attention.linear[2], weights, f"{scope}.cross_attention.out")
    layer_norm(spec.attention.layer_norm, weights, f"{scope}.norm_1")
    dense(spec.ffn.linear_0, weights, f"{scope}.ffn.inner")
    dense(spec.ffn.linear_1, weights, f"{scope}.ffn.outer")
    layer_norm(spec.ffn.layer_norm, weights, f"{scope}.norm_2")


def check_embedding_scale(model):
    """CTranslate2 multiplies embeddings by sqrt(d), as tfnmt's Transformer embedders do."""
    d = model.config.d_model
    for embedder in (model.source_embedder, model.target_embedder):
        if not (embedder.with_positions and math.isclose(embedder.scale, math.sqrt(d))):
            raise UserError("the model's embeddings are not scaled by sqrt(d_model) with "
                            "sinusoids added, as CTranslate2's Transformer expects.")


def target_table_name(weights):
    """The target embedding table's weight name: the source table's when they are shared."""
    shared = "target_embedding.embeddings" not in weights
    return "source_embedding.embeddings" if shared else "target_embedding.embeddings"


def set_encoder(spec, model, weights):
    """Embeddings, sinusoids, layers and (pre-norm) final layer norm of the encoder."""
    config = model.config
    spec.embeddings[0].weight = weights["source_embedding.embeddings"]
    spec.position_encodings.encodings = position_table(model.source_embedder, config.max_length,
                                                       config.d_model)
    for i, layer in enumerate(spec.layer):
        set_encoder_layer(layer, weights, f"encoder.layer_{i}")
    if config.pre_norm:
        layer_norm(spec.layer_norm, weights, "encoder.final_norm")


def set_decoder(spec, model, weights):
    """Embeddings, sinusoids, layers, (pre-norm) final layer norm and output projection of the
    decoder: the target table itself when tied (no bias), else the output Dense layer."""
    config = model.config
    table = weights[target_table_name(weights)]
    spec.embeddings.weight = table
    spec.position_encodings.encodings = position_table(model.target_embedder, config.max_length,
                                                       config.d_model)
    for i, layer in enumerate(spec.layer):
        set_decoder_layer(layer, weights, f"decoder_{i}")
    if config.pre_norm:
        layer_norm(spec.layer_norm, weights, "decoder_norm")
    if config.tie_output:
        spec.projection.weight = table
    else:
        dense(spec.projection, weights, "output")


def build_spec(model, source_tokenizer, target_tokenizer):
    """A ctranslate2 TransformerSpec holding every weight of a tfnmt Transformer, with its
    vocabularies and configuration (not yet validated, optimized or saved)."""
    from ctranslate2.specs import TransformerSpec

    config = model.config
    check_embedding_scale(model)
    spec = TransformerSpec.from_config((config.encoder_layers, config.decoder_layers),
                                       config.num_heads, pre_norm=config.pre_norm,
                                       activation=activation(model))
    weights = Weights(model)
    set_encoder(spec.encoder, model, weights)
    set_decoder(spec.decoder, model, weights)
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = "<unk>", "<s>", "</s>"
    spec.config.decoder_start_token = "<s>"  # tfnmt's first decoder input, at position 0
    spec.config.add_source_eos = True  # tfnmt's sources end with EOS
    spec.config.layer_norm_epsilon = float(layer_norm_epsilon(model))
    spec.register_source_vocabulary(vocabulary(
        source_tokenizer, spec.encoder.embeddings[0].weight.shape[0]))
    spec.register_target_vocabulary(vocabulary(
        target_tokenizer, spec.decoder.embeddings.weight.shape[0]))
    return spec


def convert(run, checkpoint, output_dir, quantization=None):
    """Restores `checkpoint` of `run` (best, latest, averaged or a path) and writes it as a
    CTranslate2 model into `output_dir` (created if needed, without model files yet);
    `quantization` None or "none" keeps float32 weights. Returns the checkpoint path."""

    quantization = None if quantization in (None, "none") else quantization
    if quantization not in (None,) + QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantization!r}; choose one of "
                        f"{', '.join(QUANTIZATIONS)}.")
    check_convertible(run)
    import_ctranslate2(quantization)
    model, path = runs.restore_model(run, checkpoint)
    spec = build_spec(model, *run.tokenizers())
    spec.validate()
    spec.optimize(quantization=quantization)
    os.makedirs(output_dir, exist_ok=True)
    spec.save(output_dir)
    return path


def export_run(run_dir, export_base, checkpoint="best", quantization=None):
    """Converts a run as a new numbered version under export_base (built in a temporary
    directory beside the versions, then renamed) with the run's SentencePiece models beside the
    model as source.model and target.model. Returns the version directory."""

    quantization = None if quantization in (None, "none") else quantization
    run = runs.load(run_dir)
    check_convertible(run)
    import_ctranslate2(quantization)
    for marker in ("model.bin", "saved_model.pb"):
        if os.path.isfile(os.path.join(export_base, marker)):
            raise UserError(f"{export_base} looks like a version directory; --export_base is "
                            "the model's directory that holds the numbered versions.")
    os.makedirs(export_base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=export_base)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
    try:
        path = convert(run, checkpoint, tmp, quantization)
        shutil.copyfile(run.source_vocab, os.path.join(tmp, "source.model"))
        shutil.copyfile(run.target_vocab, os.path.join(tmp, "target.model"))
        metadata = {"run_dir": run_dir, "checkpoint": path, "format": "ctranslate2",
                    "quantization": quantization or "none", "git_commit": git_commit(),
                    "max_input_tokens": run.model.max_length - 1,
                    "translate_options": decoding_options(run.model.max_length)}
        with open(os.path.join(tmp, METADATA), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)
        target = os.path.join(export_base, str(next_version(export_base)))
        os.rename(tmp, target)  # atomic on one file system; fails rather than overwrite
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
