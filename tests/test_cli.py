"""The command line as a user meets it: one end-to-end run, and every error as one line with a non-zero exit."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from framegen import generate as gen
from framegen.cli import cli
from tests.conftest import RATE, sine_song, write

TINY = ["-F", "40", "-T", "50", "--hidden", "199", "--batch-size", "8", "--sample-rate", "8000",
        "--sample-every", "1"]


def run(*args, cwd=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.mark.slow
def test_train_then_generate_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = write(tmp_path / "song.wav", sine_song(10.0))
    r = run("train", song, *TINY, "--epochs", "1")
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("song-f40-t50-")
    assert {"config.json", "metrics.jsonl", "loss.png", "samples", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["data"]["frame_size"] == 40 and cfg["norm"]["std"] > 0 and cfg["version"]

    r = run("generate", "--seconds", "0.5")  # the most recent run, found on its own
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output
    out = run_dir / "generated" / "best-0.5s.wav"
    y, sr = sf.read(out)
    assert sr == 8000 and len(y) == 4000

    r = run("info", song, "--sample-rate", "8000")
    assert r.exit_code == 0 and "10.00 s" in r.output and "F \\ T" in r.output


@pytest.mark.slow
def test_train_with_tiers_then_generate_streams_and_resume(tmp_path):
    song = write(tmp_path / "song.wav", sine_song(10.0))
    r = run("train", song, *TINY, "--tiers", "5,2", "--tier-hidden", "32", "--max-steps", "2", "--run-dir",
            tmp_path / "r")
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"]["tiers"] == [5, 2] and cfg["model"]["tier_hidden"] == 32
    r = run("generate", "--run", tmp_path / "r", "--seconds", "0.3", "--streams", "2", "--prompt-frames", "13")
    assert r.exit_code == 0, r.output
    for i in range(2):
        y, sr = sf.read(tmp_path / "r" / "generated" / f"best-0.3s-{i}.wav")
        assert sr == 8000 and len(y) == 2400 and np.all(np.isfinite(y))
    r = run("train", "--resume", tmp_path / "r", "--epochs", "1")  # the tiers come from the run
    assert r.exit_code == 0, r.output


def _silent(p):
    return write(p, np.zeros(80000, np.float32))


def _garbage(p):
    p.write_bytes(np.random.default_rng(1).bytes(4000))
    return p


def _short(p):
    return write(p, sine_song(1.0))


@pytest.mark.parametrize("make_song,args,fragment", [
    (None, [], "not found"),
    (_garbage, [], "cannot read"),
    (_silent, [], "silent"),
    (_short, [], "too short"),
    (_short, ["-F", "39"], "frame size 39 is outside 40-40,000"),
    (_short, ["-T", "20000"], "sequence length 20000 is outside"),
    (_short, ["--hidden", "512"], "hidden size 512 is outside 199-256"),
    (_short, ["--epochs", "0"], "epochs must be a positive"),
    (_short, ["--batch-size", "-1"], "batch size must be a positive"),
    (_short, ["--lr", "0"], "learning rate must be a positive"),
    (_short, ["--tiers", "8,4"], "--seq-len 100 is not a multiple of the tiers' product 8*4=32: use 96 or 128"),
    (_short, ["--tiers", "8,1", "-T", "96"], "tier ratio 1 is outside 2-64"),
])
def test_train_errors_are_one_line(tmp_path, make_song, args, fragment):
    song = tmp_path / "song.wav"
    if make_song:
        make_song(song)
    r = CliRunner().invoke(cli, ["train", str(song), "--sample-rate", "8000", *args])
    assert r.exit_code != 0
    assert fragment in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_generate_without_any_run_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["generate"])
    assert r.exit_code != 0 and "no run found" in r.output and "framegen train" in r.output


@pytest.mark.slow
def test_generate_refuses_a_run_whose_config_json_was_edited_after_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = write(tmp_path / "song.wav", sine_song(10.0))
    assert run("train", song, *TINY, "--epochs", "1", "--run-dir", "r").exit_code == 0
    cfg_path = tmp_path / "r" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["hidden"] = 200
    cfg_path.write_text(json.dumps(cfg))
    r = CliRunner().invoke(cli, ["generate", "--run", "r", "--seconds", "0.1"])
    assert r.exit_code == 1 and "config.json is damaged or was edited by hand" in r.output, r.output
    del cfg["checksum"]  # the edit kept on purpose: the run is then unverified, and its checkpoint does not fit
    cfg_path.write_text(json.dumps(cfg))
    r = CliRunner().invoke(cli, ["generate", "--run", "r", "--seconds", "0.1"])
    assert r.exit_code == 1 and "does not match its config" in r.output, r.output
    assert "warning: r was saved without checksums" in r.stderr


def test_unwritable_run_directory_is_refused(tmp_path):
    song = write(tmp_path / "song.wav", sine_song(10.0))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(cli, ["train", str(song), *TINY, "--run-dir", str(blocker / "run")])
    assert r.exit_code != 0 and "cannot write to run directory" in r.output, r.output


@pytest.mark.slow
def test_demo_needs_no_file_and_writes_song_run_and_wav(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--runs-root", str(tmp_path / "runs"), "--minutes", "0.01"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "runs" / "demo-song.wav").is_file()
    (wav,) = (tmp_path / "runs").glob("demo-song-f800-t100-*/generated/best-10s.wav")
    assert sf.info(str(wav)).frames == 160000
    assert "verdict:" in r.output and "evaluation: framegen evaluate" in r.output
    assert "your song:  framegen train YOUR-SONG.wav --output vq" in r.output


def test_generate_prints_what_to_try_next_after_a_static_mse_result(tmp_path, monkeypatch):
    import dataclasses

    from framegen import evaluate as ev
    from framegen.config import RunConfig, save_config
    from framegen.explain import MSE_ADVICE
    from framegen.report import Page

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(RunConfig(song="/x/song.wav"), run_dir)  # an MSE run, the default
    scored = ev.evaluate(sine_song(2.0), RATE, sine_song(4.0), RATE)
    drone = dataclasses.replace(scored, flags=("static", "far_from_song"))
    written = [gen.Generated(path=tmp_path / "g.wav", seconds=2.0, rms=0.1, run_dir=run_dir, evaluation=drone,
                             scored_seconds=2.0, select="off")]
    monkeypatch.setattr(gen, "generate", lambda *a, **k: written)
    monkeypatch.setattr("framegen.report.write_report", lambda *a, **k: Page(tmp_path / "report.html", "run", []))
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seconds", "2"])
    assert r.exit_code == 0, r.output
    assert "flags: static, far_from_song" in r.stdout and "transitions: follows the song" in r.stdout
    warning = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "DRONE" in warning[0], r.stderr  # a drone is a collapse, if not an exact loop
    assert f"next: {MSE_ADVICE.format(song='/x/song.wav')}" in r.stderr.splitlines()


def test_generate_warns_loudly_on_stderr_when_the_result_is_silent(vq_run, tmp_path, monkeypatch):
    run_dir, _ = vq_run
    monkeypatch.setattr(gen, "stream_audio", lambda *a, **k: iter([np.zeros((1, 12000), np.float32)]))
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seconds", "1.5", "--out",
                                 str(tmp_path / "s.wav")])
    assert r.exit_code == 0
    assert "flags: silent" in r.stdout
    warning = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "SILENT" in warning[0], r.stderr


def test_evaluate_command_flags_noise_exits_zero_and_writes_json_and_plot(tmp_path):
    song = write(tmp_path / "song.wav", sine_song(8.0))
    rng = np.random.default_rng(0)
    noise = write(tmp_path / "noise.wav", (0.3 * rng.standard_normal(3 * RATE)).astype(np.float32))
    r = CliRunner().invoke(cli, ["evaluate", str(noise), "--reference", str(song), "--json", "--plot",
                                 str(tmp_path / "cmp.png")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert "noise_like" in doc["flags"] and doc["audible_ratio"] > 0.9 and doc["frechet_ratio"] > 4
    assert (tmp_path / "cmp.png").stat().st_size > 5000
    text = CliRunner().invoke(cli, ["evaluate", str(noise), "--reference", str(song)])
    assert text.exit_code == 0 and "flags: noise_like" in text.output and "frechet_ratio" in text.output


def test_evaluate_scores_the_jumps_of_a_clip_s_path_sidecar_and_ignores_one_that_does_not_fit(tmp_path):
    from framegen import songpath

    y = sine_song(8.0)
    song = write(tmp_path / "song.wav", y)
    f = 400
    positions = np.concatenate([np.arange(20) * f + 8000, np.arange(20) * f + 32000, np.arange(20) * f + 4000])
    clip = write(tmp_path / "clip.wav", np.concatenate([y[p : p + f] for p in positions]))
    songpath.save(clip, songpath.SongPath(positions=positions, frame_size=f, sample_rate=RATE, prompt_start=0))
    r = CliRunner().invoke(cli, ["evaluate", str(clip), "--reference", str(song), "--json"])
    assert r.exit_code == 0 and "warning" not in r.stderr, r.output
    doc = json.loads(r.stdout)
    assert doc["longest_copy_s"] == pytest.approx(1.0) and doc["jumps_exact"] > 0
    assert isinstance(doc["jump_score_exact"], float)
    text = CliRunner().invoke(cli, ["evaluate", str(clip), "--reference", str(song)]).output
    assert "jump_score_exact" in text and "longest_copy_s" in text
    songpath.save(clip, songpath.SongPath(positions=positions, frame_size=f, sample_rate=2 * RATE))
    r = CliRunner().invoke(cli, ["evaluate", str(clip), "--reference", str(song), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["jump_score_exact"] is None
    assert [line for line in r.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: the clip's path sidecar is ignored: its path is at 16000 Hz, the clip at 8000 Hz"]


def test_evaluate_help_documents_every_metric_and_errors_are_one_line(tmp_path):
    from framegen.evaluate import Evaluation

    r = CliRunner().invoke(cli, ["evaluate", "--help"])
    assert r.exit_code == 0
    for name in ("audible_ratio", "loudness_ratio", "noise_likeness", "frechet_ratio", "novelty", "loop_period_s",
                 "clipping_ratio", "nonfinite_ratio", "rate_mismatch", "flags"):
        assert f"{name}:" in r.output, name
    assert "Euler gamma" in r.output  # quoted from the docstring, not paraphrased
    assert all(f"{f}:" in r.output for f in Evaluation.__dataclass_fields__)
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "missing.wav"), "--reference", str(tmp_path / "x.wav")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


# ------------------------------------------------------------------------------------------------ generate II


def test_generate_primes_with_a_44k_stereo_prompt_file(vq_run, tmp_path):
    """Any file the loader reads prompts a run: 44.1 kHz stereo on this 8 kHz run is mixed, resampled and continued;
    the settings the report keeps name the file."""
    run_dir, _ = vq_run
    t = np.arange(int(0.6 * 44100)) / 44100
    prompt = tmp_path / "mine.wav"
    sf.write(prompt, np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.1 * np.sin(2 * np.pi * 330 * t)], axis=1), 44100)
    out = tmp_path / "primed.wav"
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--prompt-file", str(prompt), "--seconds", "1.5",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    y, rate = sf.read(out, dtype="float32")
    assert rate == RATE and len(y) == 12000 and np.all(np.isfinite(y)) and np.abs(y).max() > 0.01
    assert "flags:" in r.output and "scored on" not in r.output  # a short clip is scored whole
    clips = json.loads((run_dir / "report" / "clips.json").read_text())
    assert any(v.get("settings", {}).get("prompt_file") == str(prompt) for v in clips["clips"].values())


def test_generate_with_a_too_short_prompt_file_is_one_line(vq_run, tmp_path):
    run_dir, _ = vq_run
    prompt = write(tmp_path / "short.wav", sine_song(0.1))
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--prompt-file", str(prompt), "--seconds", "1"])
    assert r.exit_code == 1 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert "short.wav is too short: 0.10 s at 8000 Hz, but 50 prompt frames of 40 samples need 0.25 s" in r.output
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--prompt-file", str(tmp_path / "none.wav")])
    assert r.exit_code == 1 and "prompt file not found" in r.output
    # the flag's earlier spelling still works for scripts, without showing in --help
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seed-file", str(tmp_path / "none.wav")])
    assert r.exit_code == 1 and "prompt file not found" in r.output
    shown = CliRunner().invoke(cli, ["generate", "--help"]).output
    assert "--prompt-file" in shown and "--prompt-offset" in shown and "--seed-file" not in shown
    assert "--seed-offset" not in shown and "--seed-frames" not in shown


def test_generate_ctrl_c_says_where_the_partial_wav_is(vq_run, tmp_path, monkeypatch):
    """Ctrl-C inside the chunk loop (raised after the first chunk): exit 130, one line naming the partial WAV,
    which holds what was written."""
    run_dir, _ = vq_run
    real = gen.stream_audio

    def interrupted(*a, **k):
        pieces = real(*a, **k)
        yield next(pieces)
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "stream_audio", interrupted)
    out = tmp_path / "long.wav"
    r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seconds", "1h", "--out", str(out)])
    assert r.exit_code == 130 and len(r.output.strip().splitlines()) == 1, r.output
    assert "interrupted by SIGINT after" in r.output and "of 3600 s" in r.output
    assert str(gen.partial_path(out)) in r.output and not out.exists()
    assert sf.info(str(gen.partial_path(out))).frames > 0


def test_seconds_that_are_not_a_length_exit_2(tmp_path):
    r = CliRunner().invoke(cli, ["generate", "--run", str(tmp_path), "--seconds", "ten"])
    assert r.exit_code == 2 and "'ten' is not a length" in r.output
