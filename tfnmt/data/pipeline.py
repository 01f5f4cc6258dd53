"""tf.data input pipeline: line-aligned text -> in-graph SentencePiece -> token-budget batches."""

import tensorflow as tf

from tfnmt.core.config import DataConfig
from tfnmt.core.errors import UserError
from tfnmt.data import corpus
from tfnmt.data.tokenizer import EOS_ID, load_tokenizer, PAD_ID


def padded_lengths(max_length: int) -> list:
    """Bucket sizes: multiples of 8 up to 64, then steps of 1.5x; the last one is max_length."""
    sizes, size = [], 8
    while size < max_length:
        sizes.append(size)
        size = size + 8 if size < 64 else int(size * 1.5) // 8 * 8
    sizes.append(max_length)
    return sizes


def bucket_length(length: int, max_length: int) -> int:
    """The padded length a sequence of `length` tokens gets (used to pad decode batches too)."""
    for size in padded_lengths(max_length):
        if length <= size:
            return size
    return max_length


def bucket_length_tensor(length, max_length: int):
    """bucket_length in TensorFlow ops (for graphs that pick their own padded width)."""
    sizes = tf.constant(padded_lengths(max_length), tf.int32)
    index = tf.searchsorted(sizes, tf.reshape(tf.cast(length, tf.int32), [1]), side="left")
    return tf.gather(sizes, tf.minimum(index, len(padded_lengths(max_length)) - 1))[0]


def _encode(tokenizer, lines, max_length, truncate):
    ids = tokenizer.tokenize(lines)
    if truncate:
        ids = ids[:, : max_length - 1]
    eos = tf.fill([ids.nrows(), 1], EOS_ID)
    return tf.concat([ids, eos], axis=1)


def _dense(value):
    return value.flat_values if isinstance(value, tf.RaggedTensor) else value


def make_dataset(source_path: str, target_path: str, source_vocab: str, target_vocab: str,
                 config: DataConfig, training: bool, input_context=None,
                 skip_batches: int = 0) -> tf.data.Dataset:
    """Builds batches {"source": [B, S], "target": [B, S]} of int32 ids padded with 0.

    Both sides end with EOS and are padded to the same bucket size S; each batch holds at most
    `config.batch_tokens` padded tokens (batch size = budget // S). Training data is sharded per
    input pipeline, shuffled with a fixed seed, and repeated forever: the batch order is a pure
    function of the seed, so a resumed run skips `skip_batches` and continues exactly.
    """
    corpus.check_parallel(source_path, target_path)
    source_tokenizer, target_tokenizer = load_tokenizer(source_vocab), load_tokenizer(target_vocab)
    if config.long_pairs not in ("drop", "truncate"):
        raise UserError(f"long_pairs must be drop or truncate, got {config.long_pairs!r}.")
    sizes = padded_lengths(config.max_length)
    if config.batch_tokens < sizes[-1]:
        raise UserError(f"batch_tokens {config.batch_tokens} cannot hold one sequence of "
                        f"max_length {config.max_length}.")
    truncate = config.long_pairs == "truncate"

    files = {"source": source_path, "target": target_path}
    if config.train_distilled and training:
        corpus.check_parallel(source_path, config.train_distilled)
        files["distilled"] = config.train_distilled  # mixed distillation picks per example
    tokenizers = {"source": source_tokenizer, "target": target_tokenizer,
                  "distilled": target_tokenizer}
    dataset = tf.data.Dataset.zip({k: tf.data.TextLineDataset(v) for k, v in files.items()})
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        dataset = dataset.shuffle(config.shuffle_buffer, seed=config.seed,
                                  reshuffle_each_iteration=True).repeat()

    def encode(lines):
        return {k: _encode(tokenizers[k], v, config.max_length, truncate) for k, v in lines.items()}

    dataset = dataset.batch(1024).map(encode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    # unbatch() of ragged rows yields rank-1 RaggedTensors: make them plain tensors for padding.
    dataset = dataset.map(lambda ex: {k: _dense(v) for k, v in ex.items()})
    if not truncate:
        dataset = dataset.filter(lambda ex: tf.reduce_all(
            tf.stack([tf.size(v) <= config.max_length for v in ex.values()])))

    def length(ex):
        return tf.reduce_max(tf.stack([tf.size(v) for v in ex.values()]))

    dataset = dataset.bucket_by_sequence_length(
        element_length_func=length,
        bucket_boundaries=[s + 1 for s in sizes],
        bucket_batch_sizes=[max(1, config.batch_tokens // s) for s in sizes] + [1],
        padding_values={k: PAD_ID for k in files},
        pad_to_bucket_boundary=True)
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    return dataset.prefetch(tf.data.AUTOTUNE)


def measure_length_offset(data):
    """Mean (target tokens - source tokens) over the training pairs, EOS excluded on both."""

    sides, count = [], 1
    for path, vocab in ((data.train_source, data.source_vocab),
                        (data.train_target, data.target_vocab or data.source_vocab)):
        tokenizer, lines = load_tokenizer(vocab), corpus.read_lines(path)
        sides.append(sum(int(tf.reduce_sum(tokenizer.tokenize(tf.constant(
            lines[i:i + 4096])).row_lengths())) for i in range(0, len(lines), 4096)))
        count = max(len(lines), 1)
    return round((sides[1] - sides[0]) / count, 4)
