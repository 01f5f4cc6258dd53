"""Sentences in, translations out: in-graph tokenization, length-sorted bucketed batches,
a compiled decode function per bucket shape, detokenization, original order restored."""

import numpy as np
import tensorflow as tf

from tfnmt import decoding
from tfnmt.config import DecodeConfig
from tfnmt.data.pipeline import bucket_length, bucket_length_tensor
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.errors import UserError


def make_decode_fn(model, config: DecodeConfig, model_max_length, jit_compile):
    """tf.function(source [B, S]) -> decoding outputs [B, K, ...]; used in process and in
    SavedModels alike. The output length is the bucket of min(floor(a*S + b), model maximum),
    computed from the input shape, so under XLA it is a constant of each compilation."""
    def fn(source):
        width = tf.cast(tf.shape(source)[1], tf.float32)
        limit = tf.cast(tf.floor(config.max_length_a * width + config.max_length_b), tf.int32)
        max_length = bucket_length_tensor(tf.minimum(limit, model_max_length), model_max_length)
        return decoding.decode(model, source, max_length, config.beam_size,
                               config.length_penalty, config.max_length_a, config.max_length_b)
    return tf.function(fn, jit_compile=jit_compile)


class Translator:
    def __init__(self, model, source_tokenizer, target_tokenizer, config: DecodeConfig,
                 max_length):
        if config.beam_size < 1 or config.n_best < 1 or config.n_best > config.beam_size:
            raise UserError(f"need 1 <= n_best <= beam_size, got n_best {config.n_best} and "
                            f"beam_size {config.beam_size}.")
        if config.batch_size < 1:
            raise UserError(f"batch_size must be positive, got {config.batch_size}.")
        self.model, self.config, self.max_length = model, config, max_length
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.decode_fn = make_decode_fn(model, config, max_length, config.xla)

    def encode(self, sentences):
        """Strings -> list of int32 arrays ending with EOS, truncated to the model's max length."""
        if not sentences:
            return []
        ragged = self.source_tokenizer.tokenize(tf.constant(sentences))
        return [np.append(ids[: self.max_length - 1], EOS_ID).astype(np.int32)
                for ids in ragged.numpy()]

    def batches(self, encoded):
        """Yields (indices, padded source [B, S]) sorted by source length, S a bucket size."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self.config.batch_size):
            index = order[start:start + self.config.batch_size]
            width = bucket_length(max(len(encoded[i]) for i in index), self.max_length)
            source = np.full([len(index), width], PAD_ID, np.int32)
            for row, i in enumerate(index):
                source[row, :len(encoded[i])] = encoded[i]
            yield index, source

    def translate_ids(self, source):
        return self.decode_fn(tf.constant(source))

    def translate(self, sentences):
        """Returns, per sentence, a list of n_best (translation, score) pairs, best first."""
        results = [None] * len(sentences)
        for index, source in self.batches(self.encode(sentences)):
            out = self.translate_ids(source)
            ids, scores = out["ids"][:, : self.config.n_best], out["scores"][:, : self.config.n_best]
            flat = tf.reshape(ids, [-1, ids.shape[-1]])
            texts = self.target_tokenizer.detokenize(flat).numpy().reshape(len(index), -1)
            for row, i in enumerate(index):
                results[i] = [(t.decode("utf-8"), float(s)) for t, s in
                              zip(texts[row], scores[row].numpy())]
        return results
