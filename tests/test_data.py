import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import data
from framegen.config import DataConfig
from framegen.errors import SongTooShortError


@pytest.mark.parametrize("frame_size,seq_len", [(40, 50), (100, 60), (333, 51)])
def test_gather_takes_consecutive_frames_from_each_offset(frame_size, seq_len):
    cfg = DataConfig(frame_size=frame_size, seq_len=seq_len)
    song = jnp.arange(200_000, dtype=jnp.float32)
    offsets = jnp.array([0, 1, 12_345, 200_000 - cfg.example_samples], jnp.int32)
    ex = np.asarray(data.gather(song, offsets, cfg))
    assert ex.shape == (4, seq_len + 1, frame_size)
    for b, o in enumerate(np.asarray(offsets)):
        for t in (0, 1, seq_len):
            np.testing.assert_array_equal(ex[b, t], np.arange(o + t * frame_size, o + (t + 1) * frame_size))
    inputs, targets = data.inputs_targets(ex)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])  # targets are inputs shifted by one frame
    assert inputs.shape == targets.shape == (4, seq_len, frame_size)
    tm = np.asarray(data.gather(song, offsets, cfg, time_major=True))  # the train step's layout (T+1, B, F)
    np.testing.assert_array_equal(tm, ex.swapaxes(0, 1))
    for got, want in zip(data.inputs_targets(tm, time_major=True), (inputs, targets)):
        np.testing.assert_array_equal(got, np.asarray(want).swapaxes(0, 1))


def test_training_offsets_never_reach_the_held_out_tail():
    cfg = DataConfig(frame_size=40, seq_len=50, val_fraction=0.1)
    split = data.split_song(100_000, cfg)
    assert split.n_train == 90_000 and split.n_val == 10_000
    offs = np.asarray(data.random_offsets(jax.random.key(0), 50_000, split, cfg))
    assert offs.min() >= 0
    assert offs.max() + cfg.example_samples <= split.n_train
    assert offs.max() + cfg.example_samples > split.n_train - 200  # and the whole training part is reachable


def test_validation_examples_tile_the_tail():
    cfg = DataConfig(frame_size=40, seq_len=50, val_fraction=0.2)
    split = data.split_song(50_000, cfg)
    offs = data.val_offsets(split, cfg)
    assert offs[0] == split.n_train
    assert np.all(np.diff(offs) == cfg.seq_len * cfg.frame_size)  # target frames follow each other
    assert offs[-1] + cfg.example_samples <= split.n_total


def test_steps_per_epoch_offers_one_example_per_frame_position():
    cfg = DataConfig(frame_size=40, seq_len=50)
    split = data.Split(n_total=100_000, n_train=90_000)
    windows = (90_000 - 51 * 40) // 40 + 1
    assert data.steps_per_epoch(split, cfg, 16) == -(-windows // 16)


def test_too_short_song_names_lengths_and_sizes_that_fit():
    cfg = DataConfig(frame_size=800, seq_len=100, sample_rate=16000)
    with pytest.raises(SongTooShortError) as e:
        data.check_fits(16000 * 30, cfg)
    msg = str(e.value)
    assert "480,000 samples" in msg and "80,800" in msg and "--seq-len 59" in msg and "--frame-size 475" in msg
    assert data.fits(16000 * 30, DataConfig(frame_size=800, seq_len=59))
    assert not data.fits(16000 * 30, DataConfig(frame_size=800, seq_len=60))
    with pytest.raises(SongTooShortError, match="--seq-len 56 or"):  # a tower's T holds whole spans of 8
        data.check_fits(16000 * 30, cfg, multiple=8)


def test_fit_table_marks_feasible_sizes():
    table = data.fit_table(16000 * 180, 16000, 0.1)
    assert table[800][100] and table[40][50]
    assert not table[40_000][10_000]
