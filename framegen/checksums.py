"""Checksums of a run's files: each artefact is saved with one and checked against it when read back, so a damaged
file is named and refused, never silently used.

Where they live, each written in the same atomic step as what it covers where the format allows:
  checkpoints   ``checksums.json`` in each step directory: the size and CRC-32 of every file orbax committed there,
                written right after the commit (``checkpoint.save`` counts a step as saved only once it has one)
  config.json   a ``checksum`` entry inside it: the CRC-32 of its settings (canonical JSON)
  *.npz         the zip format's own CRC-32 of every array, checked by ``zipfile`` as numpy reads it (no single byte
                or bit flip of a beat grid gives other numbers: tests/test_checksums.py)
CRC-32, not SHA-256: the concern is damage, not an attacker (who could rewrite the checksums too), and CRC-32 over a
memory map runs at ~4 GB/s here against SHA-256's ~1.6: checking the default model's parameters before a restore
costs 1.3 ms, not 3-4 ms of a ~25 ms restore (experiments/bench/verify-cost.md). It catches every burst of up to 32
bits and other damage but for a 2^-32 chance; a file that changed length is caught by its size.
Runs written before checksums load with one ``FramegenWarning`` saying they cannot be verified.
"""

import json
import mmap
import warnings
import zlib
from pathlib import Path

import numpy as np

from framegen.atomic import write_text
from framegen.errors import FramegenWarning, RunDamaged

MANIFEST = "checksums.json"
ALGORITHM = "crc32"


def file_digest(path: Path) -> str:
    """The CRC-32 of a file, as 8 hex digits, read through a memory map (no copy of the bytes)."""
    with open(path, "rb") as f:
        if not f.seek(0, 2):
            return f"{zlib.crc32(b''):08x}"  # an empty file cannot be mapped
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return f"{zlib.crc32(m):08x}"


def json_digest(obj) -> str:
    """The checksum of a JSON-able value, independent of key order and layout."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return f"{ALGORITHM}:{zlib.crc32(text.encode()):08x}"


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in (MANIFEST, f".{MANIFEST}.tmp"))


def write_manifest(directory: Path) -> None:
    """The size and checksum of every file under ``directory``, into its ``checksums.json`` (atomically)."""
    directory = Path(directory)
    files = {p.relative_to(directory).as_posix(): [p.stat().st_size, file_digest(p)] for p in _files(directory)}
    write_text(directory / MANIFEST, json.dumps({"algorithm": ALGORITHM, "files": files}, indent=1) + "\n")


def has_manifest(directory: Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def damage(directory: Path, parts: tuple[str, ...] | None = None) -> str | None:
    """Why ``directory`` is damaged, in a few words naming the file; None when every file its manifest lists (only
    those of the top level and of the ``parts`` subdirectories, when given) is there with its checksum."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files = manifest["files"]
        if manifest["algorithm"] != ALGORITHM or not isinstance(files, dict) or not files:
            raise ValueError
        files = {name: (int(size), str(digest)) for name, (size, digest) in files.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {MANIFEST} is unreadable"
    for name, (size, digest) in sorted(files.items()):
        top = name.split("/")[0]
        if parts is not None and "/" in name and top not in parts:
            continue
        path = directory / name
        if not path.is_file():
            return f"{_what(top)}{name} is missing"
        got = path.stat().st_size
        if got < size:
            return f"{_what(top)}{name} is truncated ({got:,} of {size:,} bytes)"
        if got > size:
            return f"{_what(top)}{name} has {got:,} bytes, not {size:,}"
        if file_digest(path) != digest:
            return f"{_what(top)}{name} does not match its checksum"
    return None


_ITEMS = {"params": "parameters", "train": "optimizer state", "meta": "metadata"}


def _what(top: str) -> str:
    return f"its {_ITEMS[top]} file " if top in _ITEMS else "its orbax file "


def read_npz(path: Path, names: tuple[str, ...]) -> dict:
    """The arrays ``names`` of an ``.npz``; any failure to read them (a bad CRC, a broken zip, junk that is no zip)
    raises ``RunDamaged`` naming the file as damaged."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in names}
    except Exception as e:  # noqa: BLE001 - damage shows as any of a dozen errors of zipfile, numpy and zlib
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        if "pickled" in reason:
            reason = "not an npz file"
        raise RunDamaged(f"{path} is damaged ({reason}): retrain the run", reason) from None


def unverified(run_dir: Path) -> None:
    """The one note of a run saved without checksums (the same words wherever it is found, so it prints once)."""
    warnings.warn(f"{run_dir} was saved without checksums (by an older framegen, or a save cut short by a kill): "
                  f"its files cannot be verified", FramegenWarning, stacklevel=3)
