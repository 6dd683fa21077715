"""framegen.checksums: a directory's manifest names the file that is flipped, truncated or missing; an npz's own
CRC-32s catch every byte and bit flip of a beat grid; config.json's checksum catches a changed setting, not a
reformatting."""

import io
import json

import numpy as np
import pytest

from framegen import checksums, clock
from framegen.config import CONFIG_FILE, load_config, save_config
from framegen.errors import FramegenWarning, RunDamaged
from tests.conftest import tiny_config


def _tree(root):
    (root / "params" / "d").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "params" / "d" / "data").write_bytes(bytes(range(256)) * 64)
    (root / "train" / "opt").write_bytes(b"o" * 1000)
    (root / "_CHECKPOINT_METADATA").write_text("{}")
    checksums.write_manifest(root)


def test_a_manifest_names_the_file_that_is_flipped_truncated_or_missing(tmp_path):
    _tree(tmp_path)
    assert checksums.damage(tmp_path) is None
    data = tmp_path / "params" / "d" / "data"
    good = data.read_bytes()
    data.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])  # one bit
    assert checksums.damage(tmp_path) == "its parameters file params/d/data does not match its checksum"
    data.write_bytes(good[:-1])
    assert checksums.damage(tmp_path) == "its parameters file params/d/data is truncated (16,383 of 16,384 bytes)"
    data.write_bytes(good + b"\0")
    assert checksums.damage(tmp_path) == "its parameters file params/d/data has 16,385 bytes, not 16,384"
    data.write_bytes(good)
    (tmp_path / "train" / "opt").unlink()
    assert checksums.damage(tmp_path) == "its optimizer state file train/opt is missing"
    assert checksums.damage(tmp_path, parts=("params",)) is None  # generate reads no optimizer state
    (tmp_path / "_CHECKPOINT_METADATA").write_text("[]")
    assert checksums.damage(tmp_path, parts=("params",)) == ("its orbax file _CHECKPOINT_METADATA does not match "
                                                             "its checksum")
    (tmp_path / checksums.MANIFEST).write_text('{"algorithm": "crc32", "fil')
    assert checksums.damage(tmp_path) == "its checksums.json is unreadable"
    assert not list(tmp_path.glob(".*.tmp"))


def _beats_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, version=np.int64(clock.BEATS_VERSION), beats=np.linspace(0.0, 8e4, 40),
             sample_rate=np.int64(8000))
    return buf.getvalue()


def test_every_byte_and_bit_flip_of_a_beat_grid_is_refused_or_harmless(tmp_path):
    """The zip's CRC-32 of each array: no flip anywhere in the file gives other numbers (flips of a timestamp or of
    a header field numpy does not read change nothing)."""
    good = _beats_npz()
    path = tmp_path / clock.BEATS_FILE
    path.write_bytes(good)
    want = clock.load(tmp_path)
    refused = harmless = 0
    for i in range(len(good)):
        for mask in (0xFF, 1 << (i % 8)):
            path.write_bytes(good[:i] + bytes([good[i] ^ mask]) + good[i + 1:])
            try:
                got = clock.load(tmp_path)
            except RunDamaged as e:
                assert str(e).startswith(f"{path} is damaged (") and str(e).endswith("): retrain the run"), e
                refused += 1
                continue
            np.testing.assert_array_equal(got.beats, want.beats)
            assert got.sample_rate == want.sample_rate
            harmless += 1
    assert refused > 3 * harmless > 0  # 1,775 refused, 425 harmless (zip64 sizes, timestamps)


@pytest.mark.parametrize("content,reason", [(lambda b: b[:len(b) // 2], "File is not a zip file"),
                                            (lambda b: b"", "No data left in file"),
                                            (lambda b: b"junk" * 1024, "not an npz file")])
def test_a_truncated_empty_or_junk_npz_is_named_as_damaged(tmp_path, content, reason):
    path = tmp_path / clock.BEATS_FILE
    path.write_bytes(content(_beats_npz()))
    with pytest.raises(RunDamaged) as e:
        clock.load(tmp_path)
    assert str(e.value) == f"{path} is damaged ({reason}): retrain the run"


def test_config_checksum_catches_a_changed_setting_but_not_a_reformatting(tmp_path):
    cfg = tiny_config()
    save_config(cfg, tmp_path)
    path = tmp_path / CONFIG_FILE
    d = json.loads(path.read_text())
    assert d["checksum"].startswith("crc32:")
    path.write_text(json.dumps(dict(reversed(d.items())), indent=None))  # same settings, other layout
    assert load_config(tmp_path) == cfg
    d["train"]["lr"] = 0.004  # valid, in range, and not what the run was trained with
    path.write_text(json.dumps(d))
    with pytest.raises(RunDamaged) as e:
        load_config(tmp_path)
    assert str(e.value) == (f"{path} is damaged or was edited by hand (its settings do not match the checksum saved "
                            f"with them): undo the change (or delete its \"checksum\" line to use it unverified), or "
                            f"retrain the run")
    del d["checksum"]  # a run from before checksums, or an edit its author keeps
    path.write_text(json.dumps(d))
    with pytest.warns(FramegenWarning, match=f"{tmp_path} was saved without checksums"):
        assert load_config(tmp_path).train.lr == 0.004
