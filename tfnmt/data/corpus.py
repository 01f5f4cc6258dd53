"""Checks that parallel text files are usable before any TensorFlow graph touches them."""

import os
import sys

from tfnmt.core.errors import UserError
from tfnmt.core.files import check_creatable, write_atomic


def count_lines(path: str) -> int:
    """Counts lines of a UTF-8 text file; raises UserError for a missing, empty or non-UTF-8 file."""
    if not path:
        raise UserError("a corpus path is empty; pass the file with its flag.")
    if not os.path.exists(path):
        raise UserError(f"corpus file {path} does not exist.")
    if not os.path.isfile(path):  # a directory, /dev/null, a pipe
        raise UserError(f"corpus file {path} is not a regular file.")
    if not os.access(path, os.R_OK):
        raise UserError(f"corpus file {path} cannot be read (permissions).")
    lines = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path} line {number} is not valid UTF-8 (byte {e.start}).") from None
            lines += 1
    if lines == 0:
        raise UserError(f"corpus file {path} is empty.")
    return lines


def check_parallel(source: str, target: str) -> int:
    """Validates a line-aligned pair of files and returns their common line count."""
    n_source, n_target = count_lines(source), count_lines(target)
    if n_source != n_target:
        raise UserError(
            f"{source} has {n_source} lines but {target} has {n_target}; parallel files must be "
            "line-aligned.")
    return n_source


def _text_line(raw: bytes, number: int, name: str) -> str:
    """One line of bytes -> text without its \n (or \r\n); a lone \r stays inside the line, as
    training's TextLineDataset keeps it, so line i of the output always answers line i."""
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{name} line {number} is not valid UTF-8 (byte {e.start}).") from None


def read_lines(path: str) -> list:
    """The lines of a UTF-8 text file, split on \n only."""
    count_lines(path)
    with open(path, "rb") as f:
        return [_text_line(raw, i, path) for i, raw in enumerate(f, start=1)]


def iter_stdin_lines():
    """Lines of standard input as they arrive (split on \n only, UTF-8 checked per line)."""
    for number, raw in enumerate(iter(sys.stdin.buffer.readline, b""), start=1):
        yield _text_line(raw, number, "stdin")


def check_output_path(path: str, inputs=()) -> None:
    """Refuses an output path that cannot be written, or that names one of `inputs` (it would
    replace them), before any work is done."""
    if path == "-":
        return
    for given in inputs:
        if given and given != "-" and os.path.abspath(given) == os.path.abspath(path):
            raise UserError(f"output {path} is also an input; name another file.")
    if os.path.isdir(path):
        raise UserError(f"output {path} is a directory; name a file.")
    check_creatable(path, f"output {path}")


def write_lines(path: str, lines) -> None:
    """Writes lines to path ('-': stdout) whole, with write_atomic."""
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
    else:
        write_atomic(path, text)
