"""Atomic file writes: the one helper every writer of a file others read uses (config, metrics, WAVs, codebooks,
figures, sweep results): write a temporary file beside the target, then rename it over the target.
"""

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path`` in one rename (a reader
    or a crash sees the old file or the new one, never half of one); on an error it is removed and the error
    raised again."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a directory turned read-only: the error that stopped the write is the one to report
        raise


def write_text(path, text: str) -> None:
    """Replace ``path``'s content with ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
