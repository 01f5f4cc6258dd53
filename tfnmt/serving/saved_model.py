"""SavedModels for TensorFlow Serving: strings in, translations out, decoding under XLA.

Only core TensorFlow and tensorflow_text ops end up in the graph, so the stock
tensorflow_model_server (which links tensorflow_text's ops) can serve it with no Python of ours.
"""

import dataclasses
import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import UserError
from tfnmt.core.provenance import git_commit
from tfnmt.data import shortlist
from tfnmt.data.pipeline import bucket_length_tensor, padded_lengths
from tfnmt.data.shortlist import union
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.inference.translator import load_rescorer, make_decode_fn, resolve_method
from tfnmt.models import named_weights

METADATA = "assets.extra/tfnmt.json"


class TranslationModule(tf.Module):
    """Signatures: translate (XLA), translate_plain (no XLA), translate_ids (ids in and out)."""

    def __init__(self, model, source_tokenizer, target_tokenizer, config: DecodeConfig,
                 max_length, rescorer=None, shortlist=None):
        super().__init__()
        self.model = model
        # With config.shortlist: the run's lists, constants of the graph (data.shortlist).
        self.shortlist = ({k: tf.constant(v, tf.int32) for k, v in shortlist.items()}
                          if config.shortlist else None)
        # The TF1-style loaders (saved_model_cli run, tensorflow_model_server) only find
        # variables tracked directly by name: Keras 3 layers alone are not enough.
        self.weights = named_weights(model)
        self.kept = model.kept_variables()  # the output table laid out for decoding
        if rescorer is not None:  # a NAT's AT rescorer travels in the same SavedModel
            self.rescorer = rescorer
            self.rescorer_weights = named_weights(rescorer)
            self.rescorer_kept = rescorer.kept_variables()
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.config, self.max_length = config, max_length
        self._decode_xla = make_decode_fn(model, config, max_length, True, target_tokenizer,
                                          rescorer)
        self._decode_plain = make_decode_fn(model, config, max_length, False, target_tokenizer,
                                            rescorer)

    def _pad(self, ids):
        """Ragged ids (no EOS) -> [B, S] with EOS, truncated to max_length, S a bucket size."""
        ids = ids[:, : self.max_length - 1]
        ids = tf.concat([ids, tf.fill([ids.nrows(), 1], EOS_ID)], axis=1)
        width = bucket_length_tensor(tf.reduce_max(ids.row_lengths()), self.max_length)
        rows = tf.cast(ids.nrows(), tf.int32)
        return ids.to_tensor(default_value=PAD_ID, shape=tf.stack([rows, width]))

    def _decode(self, decode, source):
        if self.shortlist is None:
            return decode(source)

        return decode(source, union(self.shortlist, source, self.model.config.output_vocab_size))

    def _translate(self, sentences, decode):
        # Invalid UTF-8 becomes U+FFFD instead of failing the whole request.
        sentences = tf.strings.unicode_transcode(sentences, "UTF-8", "UTF-8", errors="replace")
        source = self._pad(tf.cast(self.source_tokenizer.tokenize(sentences), tf.int32))
        out = self._decode(decode, source)
        return {"translations": self.target_tokenizer.detokenize(out["ids"][:, 0]),
                "scores": out["scores"][:, 0]}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate(self, sentences):
        return self._translate(sentences, self._decode_xla)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate_plain(self, sentences):
        return self._translate(sentences, self._decode_plain)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids"),
                                  tf.TensorSpec([None], tf.int32, name="lengths")])
    def translate_ids(self, ids, lengths):
        """ids [B, S] without EOS (anything past `lengths` ignored) -> n-best ids, lengths, scores."""
        ragged = tf.RaggedTensor.from_tensor(ids, lengths=tf.minimum(lengths, tf.shape(ids)[1]))
        out = self._decode(self._decode_xla, self._pad(ragged))
        return {"ids": out["ids"][:, : self.config.n_best],
                "lengths": out["lengths"][:, : self.config.n_best],
                "scores": out["scores"][:, : self.config.n_best]}

    def signatures(self):
        translate = self.translate.get_concrete_function()
        return {"serving_default": translate, "translate": translate,
                "translate_plain": self.translate_plain.get_concrete_function(),
                "translate_ids": self.translate_ids.get_concrete_function()}


WARMUP = "assets.extra/tf_serving_warmup_requests"


def allowed_batch_sizes(batching_parameters):
    """The allowed_batch_sizes of a TF Serving batching parameters file ([1] without one)."""
    if not batching_parameters:
        return [1]
    if not os.path.isfile(batching_parameters):
        raise UserError(f"batching parameters file {batching_parameters} does not exist.")
    with open(batching_parameters, encoding="utf-8") as f:
        sizes = [int(m) for m in re.findall(r"^\s*allowed_batch_sizes\s*:\s*(\d+)", f.read(), re.M)]
    return sorted(set(sizes)) or [1]


def filler_sentence(tokenizer, tokens):
    """A sentence that tokenizes to exactly `tokens` pieces (a word-initial piece repeated)."""
    for piece_id in range(4, tokenizer.vocab_size):
        piece = tokenizer.pieces([piece_id])[0]
        if not piece.startswith("\u2581") or len(piece) < 2:
            continue
        text = tokenizer.detokenize(tf.constant([[piece_id] * tokens])).numpy()[0]
        if tokenizer.tokenize(tf.constant([text])).to_list()[0] == [piece_id] * tokens:
            return text.decode("utf-8")
    raise UserError("the source vocabulary has no piece to build warm-up sentences from.")


def warmup_requests(source_tokenizer, max_length, batch_sizes, signature="serving_default"):
    """PredictionLogs of TF Serving's warm-up format: for every allowed batch size and every
    bucket width of the input, one request whose sentences pad to that shape, so the server
    compiles each XLA program before its first real request."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2


    logs, previous = [], 0
    for width in padded_lengths(max_length):
        tokens = min(width, max_length) - 1  # + EOS = width
        if tokens <= previous or tokens < 1:
            continue
        previous = tokens
        sentence = filler_sentence(source_tokenizer, tokens).encode("utf-8")
        for batch in batch_sizes:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature))
            request.inputs["sentences"].CopyFrom(tf.make_tensor_proto([sentence] * batch,
                                                                      dtype=tf.string))
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir, logs):
    os.makedirs(os.path.join(version_dir, os.path.dirname(WARMUP)), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(version_dir, WARMUP)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def graph_ops(version_dir):
    """Every op type in a SavedModel: the graph and all of its functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def unservable_ops(version_dir):
    """Ops the stock model server lacks: Python ops, ops no loaded library registers (only
    tensorflow and tensorflow_text are imported by tfnmt), ops without a CPU kernel (XLA-only)."""
    import tensorflow_text  # noqa: F401  (registers its ops, as the model server links them)
    from tensorflow.python.framework import kernels, op_def_registry

    bad = {}
    for op in sorted(graph_ops(version_dir)):
        if op in PYTHON_OPS:
            bad[op] = "runs Python"
        elif op_def_registry.get(op) is None:
            bad[op] = "not a TensorFlow or tensorflow_text op"
        elif not {k.device_type for k in kernels.get_registered_kernels_for_op(op).kernel} & {
                "CPU", "DEFAULT"}:
            bad[op] = "has no CPU kernel"
    return bad


def next_version(export_base):
    versions = [int(d) for d in os.listdir(export_base) if re.fullmatch(r"\d+", d)] \
        if os.path.isdir(export_base) else []
    return max(versions, default=0) + 1


def export(module, export_base, metadata, warmup=()):
    """Writes a new numbered version under export_base, atomically (build aside, then rename).

    A server polling export_base only ever sees complete versions; older versions are kept.
    """
    if os.path.isfile(os.path.join(export_base, "saved_model.pb")):
        raise UserError(f"{export_base} looks like a version directory; --export_base is the "
                        "model's directory that holds the numbered versions.")
    os.makedirs(export_base, exist_ok=True)
    for stale in os.listdir(export_base):  # left by an export that was killed
        if stale.startswith(".tmp-export-"):
            shutil.rmtree(os.path.join(export_base, stale), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=export_base)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700: a server user could not read it
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures(),
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        bad = unservable_ops(tmp)
        if bad:
            raise UserError("the export uses ops TensorFlow Serving lacks: " +
                            ", ".join(f"{op} ({why})" for op, why in bad.items()) + ".")
        if warmup:
            write_warmup(tmp, warmup)
        os.makedirs(os.path.join(tmp, os.path.dirname(METADATA)), exist_ok=True)
        with open(os.path.join(tmp, METADATA), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)
        version = next_version(export_base)
        target = os.path.join(export_base, str(version))
        os.rename(tmp, target)  # atomic on one file system; fails rather than overwrite
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_metadata(version_dir):
    path = os.path.join(version_dir, METADATA)
    if not os.path.isfile(path):
        raise UserError(f"{version_dir} is not a tfnmt export (no {METADATA}).")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def export_run(run_dir, export_base, checkpoint, config, batching_parameters=""):
    """Restores a run's checkpoint and exports it with its tokenizers as a new version."""

    run = runs.load(run_dir)
    config = resolve_method(config, run)
    model, path = runs.restore_model(run, checkpoint, config.precision)
    source, target = run.tokenizers()
    lists = None
    if config.shortlist:

        lists = shortlist.load(run_dir)
    module = TranslationModule(model, source, target, config, run.model.max_length,
                               load_rescorer(config, run), lists)
    metadata = {"run_dir": run_dir, "checkpoint": path, "decode": dataclasses.asdict(config),
                "max_input_tokens": run.model.max_length - 1,
                "architecture": run.model.architecture, "git_commit": git_commit(),
                "signatures": sorted(module.signatures())}
    warmup = warmup_requests(source, run.model.max_length, allowed_batch_sizes(batching_parameters))
    metadata["warmup_requests"] = len(warmup)
    return export(module, export_base, metadata, warmup)
