"""Files written whole or not at all."""

import contextlib
import os

from tfnmt.core.errors import UserError


def check_creatable(path: str, what: str, directory: bool = False) -> None:
    """Refuses, before any work is done, a file path (or with `directory`, a directory that
    files will be written into) whose nearest existing ancestor, or itself, is not a writable
    directory; `what` names it in the error ("output x.txt", "--export_base d")."""
    existing = os.path.abspath(path) if directory else os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise UserError(f"{what} cannot be written ({existing} is not a writable directory).")


@contextlib.contextmanager
def replacing(path: str, suffix: str = ""):
    """Yields a temporary name beside `path` (ending in `suffix`, for writers that go by the
    name's ending) to write the new file under: renamed to `path` when the block ends, removed
    if it fails (a full disk, say), so `path` keeps its old contents and nothing half-written
    stays."""
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def write_atomic(path: str, text: str) -> None:
    """Writes text to path whole: a temporary file in the same folder, renamed into place."""
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory; name a file to write.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
