"""Files written whole or not at all."""

import os

from tfnmt.core.errors import UserError


def write_atomic(path: str, text: str) -> None:
    """Writes text to path whole: a temporary file in the same folder, renamed into place."""
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory; name a file to write.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
