"""Damaged run files through the real CLI (README's fault table): each kind of file flipped, truncated or deleted,
the exact one-line message and exit code, and nothing in the run overwritten by a refused command.

A VQ run with a beat clock holds every kind of file (checkpoints, codebook.npz, beats.npz, config.json); resume is
driven on a small MSE run whose ``best`` (step 62) is older than its ``last`` (step 124).
"""

import hashlib
import json
import shutil
import struct
import zipfile
from dataclasses import replace

import pytest
from click.testing import CliRunner

from framegen import checkpoint, checksums, runs
from framegen.cli import cli
from framegen.config import CONFIG_FILE
from tests.conftest import sine_song, tiny_config, write
from tests.test_clock import click_song

SPE = 62  # steps per epoch of tiny_config on the 3 s sine


@pytest.fixture(scope="module")
def vq_beat_run(tmp_path_factory):
    """A VQ run (K=16) with a beat clock, 4 steps: best and last both at step 4; shared, copied before damage."""
    from framegen.train import train_song

    d = tmp_path_factory.mktemp("verify-vq")
    song = write(d / "clicks.wav", click_song(8.0), 8000)
    cfg = tiny_config(epochs=1, max_steps=4)
    cfg = replace(cfg, model=replace(cfg.model, output="vq", codebook=16, clock="beat"))
    return train_song(song, cfg, run_dir=d / "run").run_dir


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(run) -> dict:
    return {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def step_dir(run, kind):
    (step,) = [p for p in (run / "checkpoints" / kind).iterdir() if p.name.isdigit()]
    return step


def biggest(run, kind, item):
    return max((step_dir(run, kind) / item).rglob("d/*"), key=lambda p: p.stat().st_size)


def flip(path, n=4096, at=None):
    """XOR ``n`` bytes (4 KB: the issue's measurement) in the middle of the file, or from ``at``."""
    b = bytearray(path.read_bytes())
    lo = max(0, len(b) // 2 - n // 2) if at is None else at
    b[lo:lo + n] = bytes(x ^ 0xFF for x in b[lo:lo + n])
    path.write_bytes(bytes(b))


def flip_member(path, name):
    """Flip 16 bytes inside the data of one array of an npz (past its .npy header)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    flip(path, 16, at=info.header_offset + 30 + name_len + extra_len + 128)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def rel(path, run, kind):
    return path.relative_to(step_dir(run, kind)).as_posix()


# Each case damages a copy of the run and returns the exact message ({run} is filled in).
def _best_params_flipped(run):
    f = biggest(run, "best", "params")
    flip(f)
    return (f"{{run}}/checkpoints/best is damaged (its parameters file {rel(f, run, 'best')} does not match its "
            f"checksum): generate from the last checkpoint (step 4) with --checkpoint last, or retrain the run")


def _best_params_truncated(run):
    f = biggest(run, "best", "params")
    size = f.stat().st_size
    truncate(f)
    return (f"{{run}}/checkpoints/best is damaged (its parameters file {rel(f, run, 'best')} is truncated "
            f"({size // 2:,} of {size:,} bytes)): generate from the last checkpoint (step 4) with --checkpoint last, "
            f"or retrain the run")


def _best_params_deleted(run):
    f = biggest(run, "best", "params")
    name = rel(f, run, "best")
    f.unlink()
    return (f"{{run}}/checkpoints/best is damaged (its parameters file {name} is missing): generate from the last "
            f"checkpoint (step 4) with --checkpoint last, or retrain the run")


def _best_meta_flipped(run):
    flip(step_dir(run, "best") / "meta" / "metadata", 4)
    return ("{run}/checkpoints/best is damaged (its metadata file meta/metadata does not match its checksum): "
            "generate from the last checkpoint (step 4) with --checkpoint last, or retrain the run")


def _best_orbax_metadata_flipped(run):
    flip(step_dir(run, "best") / "_CHECKPOINT_METADATA", 1)
    return ("{run}/checkpoints/best is damaged (its orbax file _CHECKPOINT_METADATA does not match its checksum): "
            "generate from the last checkpoint (step 4) with --checkpoint last, or retrain the run")


def _best_checksums_flipped(run):
    flip(step_dir(run, "best") / "checksums.json", 8, at=0)
    return ("{run}/checkpoints/best is damaged (its checksums.json is unreadable): generate from the last "
            "checkpoint (step 4) with --checkpoint last, or retrain the run")


def _last_params_flipped(run):
    f = biggest(run, "last", "params")
    flip(f)
    return (f"{{run}}/checkpoints/last is damaged (its parameters file {rel(f, run, 'last')} does not match its "
            f"checksum): generate from the best checkpoint (step 4) with --checkpoint best, or retrain the run")


def _both_flipped(run):
    f = biggest(run, "best", "params")
    flip(f)
    flip(biggest(run, "last", "params"))
    return (f"{{run}}/checkpoints/best is damaged (its parameters file {rel(f, run, 'best')} does not match its "
            f"checksum): so is the last checkpoint: retrain the run")


def _codebook_flipped(run):
    flip_member(run / "codebook.npz", "centroids.npy")
    return "{run}/codebook.npz is damaged (Bad CRC-32 for file 'centroids.npy'): retrain the run"


def _codebook_truncated(run):
    truncate(run / "codebook.npz")
    return "{run}/codebook.npz is damaged (File is not a zip file): retrain the run"


def _codebook_deleted(run):
    (run / "codebook.npz").unlink()
    return "{run} is a VQ run without codebook.npz: retrain it with 'framegen train --output vq'"


def _beats_flipped(run):
    flip_member(run / "beats.npz", "beats.npy")
    return "{run}/beats.npz is damaged (Bad CRC-32 for file 'beats.npy'): retrain the run"


def _beats_junk(run):
    (run / "beats.npz").write_bytes(b"junk" * 1024)
    return "{run}/beats.npz is damaged (not an npz file): retrain the run"


def _beats_deleted(run):
    (run / "beats.npz").unlink()
    return "{run} has no beats.npz though its config uses the beat clock: retrain the run"


def _config_value_changed(run):
    path = run / CONFIG_FILE
    d = json.loads(path.read_text())
    d["norm"]["std"] *= 1.001  # still valid JSON and a valid config: only the checksum tells
    path.write_text(json.dumps(d, indent=2))
    return ("{run}/config.json is damaged or was edited by hand (its settings do not match the checksum saved with "
            "them): undo the change (or delete its \"checksum\" line to use it unverified), or retrain the run")


def _config_deleted(run):
    (run / CONFIG_FILE).unlink()
    return "{run} has no config.json: pass --run with a directory made by 'framegen train'"


REFUSED = [_best_params_flipped, _best_params_truncated, _best_params_deleted, _best_meta_flipped,
           _best_orbax_metadata_flipped, _best_checksums_flipped, _last_params_flipped, _both_flipped,
           _codebook_flipped, _codebook_truncated, _codebook_deleted, _beats_flipped, _beats_junk, _beats_deleted,
           _config_value_changed, _config_deleted]


@pytest.mark.parametrize("damage", REFUSED, ids=lambda f: f.__name__.strip("_"))
def test_generate_refuses_a_damaged_run_file_naming_it_and_writes_nothing(vq_beat_run, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    want = damage(run).format(run=run)
    before = snapshot(run)
    out = tmp_path / "out.wav"
    kind = ["--checkpoint", "last"] if damage is _last_params_flipped else []
    r = invoke("generate", "--run", run, *kind, "--seconds", "0.1", "--no-score", "--out", out)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [f"Error: {want}"], r.output
    assert snapshot(run) == before and not out.exists() and not list(tmp_path.glob("*.wav"))


def test_a_truncated_config_is_refused_as_invalid(vq_beat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    truncate(run / CONFIG_FILE)
    for command in (["generate", "--run", run, "--seconds", "0.1"], ["report", run], ["train", "--resume", run]):
        r = invoke(*command)
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert r.output.startswith(f"Error: {run}/config.json is not a valid framegen config ("), r.output
        assert "re-create the run with 'framegen train'" in r.output


def test_report_and_resume_refuse_a_changed_config(vq_beat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    want = _config_value_changed(run).format(run=run)
    before = snapshot(run)
    for command in (["report", run], ["train", "--resume", run]):
        r = invoke(*command)
        assert r.exit_code == 1 and r.output.strip().splitlines() == [f"Error: {want}"], r.output
    assert snapshot(run) == before


def _generate(run, out):
    return invoke("generate", "--run", run, "--seconds", "0.1", "--no-score", "--out", out)


def test_generate_reads_no_optimizer_state_so_damage_there_does_not_stop_it(vq_beat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    flip(biggest(run, "best", "train"))
    r = _generate(run, tmp_path / "out.wav")
    assert r.exit_code == 0 and r.stderr.strip() == "" and (tmp_path / "out.wav").is_file(), r.output


def test_a_missing_best_falls_back_to_last_with_one_line_saying_so(vq_beat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    shutil.rmtree(run / "checkpoints" / "best")
    r = _generate(run, tmp_path / "out.wav")
    assert r.exit_code == 0, r.output
    assert r.stderr.strip().splitlines() == [f"warning: {run} has no best checkpoint: using the last checkpoint "
                                             f"(step 4) instead"], r.stderr
    assert (tmp_path / "out.wav").is_file()


def test_a_run_saved_before_checksums_generates_with_one_note(vq_beat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    for manifest in run.glob("checkpoints/*/*/checksums.json"):
        manifest.unlink()
    d = json.loads((run / CONFIG_FILE).read_text())
    del d["checksum"]
    (run / CONFIG_FILE).write_text(json.dumps(d, indent=2))
    r = _generate(run, tmp_path / "out.wav")
    assert r.exit_code == 0, r.output
    assert r.stderr.strip().splitlines() == [f"warning: {run} was saved without checksums (by an older framegen, or "
                                             f"a save cut short by a kill): its files cannot be verified"], r.stderr


@pytest.mark.slow
def test_report_names_damaged_lines_of_metrics_jsonl_and_still_writes_the_page(vq_beat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vq_beat_run, run)
    path = run / runs.METRICS_FILE
    (row,) = path.read_text().splitlines()
    path.write_bytes(f"{row}\n\x00\xff garbage\n{row}\n".encode("latin-1"))
    r = invoke("report", run)
    assert r.exit_code == 0 and (run / "report.html").is_file(), r.output
    assert r.stderr.strip().splitlines() == [f"warning: {path} is damaged: 1 of its 3 lines are not metrics rows "
                                             f"(line 2 first); they are left out of the curves and the report, and "
                                             f"a resume drops them"], r.stderr


# ------------------------------------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """An MSE run of 2 epochs whose best is epoch 1's checkpoint (step 62) and last epoch 2's (step 124)."""
    from framegen.train import resume_run, train_song

    d = tmp_path_factory.mktemp("verify-resume")
    song = write(d / "song.wav", sine_song(3.0))
    run = train_song(song, tiny_config(epochs=1), run_dir=d / "run").run_dir
    shutil.copytree(step_dir(run, "last"), d / "epoch-1")
    assert resume_run(run, epochs=2).step == 2 * SPE
    shutil.rmtree(run / "checkpoints" / "best")
    shutil.copytree(d / "epoch-1", run / "checkpoints" / "best" / str(SPE))  # a sealed step copies as it is
    assert checkpoint.latest_step(run, "best") == SPE and checkpoint.latest_step(run, "last") == 2 * SPE
    return run


def _resume(two_epoch_run, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    damage(run)
    return run, invoke("train", "--resume", run, "--epochs", "2")


@pytest.mark.slow
@pytest.mark.parametrize("item,what", [("params", "parameters"), ("train", "optimizer state")])
def test_resume_from_a_damaged_last_continues_from_best_saying_what_is_trained_again(two_epoch_run, tmp_path, item,
                                                                                      what):
    box = {}

    def damage(run):
        f = biggest(run, "last", item)
        box["name"] = rel(f, run, "last")
        flip(f)

    run, r = _resume(two_epoch_run, tmp_path, damage)
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {run}/checkpoints/last is damaged (its {what} file {box['name']} does not match "
                        f"its checksum): resuming from checkpoints/best at step 62 (epoch 1.00); the 62 steps after "
                        f"it, to step 124 (epoch 2.00), are trained again"], r.stderr
    assert f"done: {2 * SPE} steps" in r.stdout
    assert [row["epoch"] for row in runs.read_metrics(run)] == [1, 2]
    assert checkpoint.latest_step(run, "last") == 2 * SPE  # the damaged step was saved again, sealed
    saved = run / "checkpoints" / "last" / str(2 * SPE)
    assert checksums.has_manifest(saved) and checksums.damage(saved) is None


@pytest.mark.slow
def test_resume_without_last_continues_from_best(two_epoch_run, tmp_path):
    run, r = _resume(two_epoch_run, tmp_path, lambda run: shutil.rmtree(run / "checkpoints" / "last"))
    assert r.exit_code == 0, r.output
    assert [line for line in r.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {run} has no last checkpoint: resuming from checkpoints/best at step 62 (epoch 1.00)"], r.stderr
    assert f"done: {2 * SPE} steps" in r.stdout and [row["epoch"] for row in runs.read_metrics(run)] == [1, 2]


@pytest.mark.slow
def test_resume_with_both_checkpoints_damaged_is_refused_and_changes_nothing(two_epoch_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    last, best = biggest(run, "last", "params"), step_dir(run, "best") / "meta" / "metadata"
    flip(last)
    flip(best, 4)
    before = snapshot(run)
    r = invoke("train", "--resume", run, "--epochs", "3")
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1:] == [  # after train's "precision: fp32"
        f"Error: {run}/checkpoints/last is damaged (its parameters file {rel(last, run, 'last')} does not match its "
        f"checksum) and {run}/checkpoints/best is damaged (its metadata file meta/metadata does not match its "
        f"checksum): start the run over by removing {run}/checkpoints and running 'framegen train --resume {run}', "
        f"or train a new run"], r.output
    assert snapshot(run) == before
