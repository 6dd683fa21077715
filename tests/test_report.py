"""framegen report: the run and sweep pages, opened in headless Chromium (players load, images decode, links resolve,
the sweep table sorts, no console errors, no sideways scrolling on a phone), and bad input through the CLI.

The runs here are written by the tests (a config, metrics rows and WAVs of a sine), never trained: the report only
reads what is on disk. The browser tests skip, with the reason, only where chromium, chromedriver or selenium are
missing (.ci/run installs them).
"""

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from framegen import report, runs
from framegen import sweep as sweeps
from framegen.cli import cli
from framegen.config import Norm, load_config, save_config
from tests.conftest import RATE, sine_song, tiny_config, write

SONG_SECONDS = 12.0


def make_run(root: Path, song: Path, *, name="run", epochs=2, clips=True, frame_size=40) -> Path:
    """A run directory as train and generate leave it: config.json, metrics.jsonl with sample scores, samples/ and
    generated/ WAVs (pieces of a noisy sine, so every metric is finite)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    cfg = tiny_config(sample_every=1, epochs=epochs)
    cfg = replace(cfg, data=replace(cfg.data, frame_size=frame_size), song=str(song),
                  song_samples=int(SONG_SECONDS * RATE), norm=Norm(0.0, 0.3))
    save_config(cfg, run_dir)
    rng = np.random.default_rng(len(name))
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "step": 10 * epoch, "train_mse": 1 / epoch, "val_mse": 0.9 / epoch,
               "val_snr_db": 0.5 * epoch, "zero_mse": 1.0, "copy_mse": 1.2, "seconds": 2.0 * epoch}
        if clips:
            y = sine_song(1.5, freq=220 + 20 * epoch) + 0.05 * rng.standard_normal(int(1.5 * RATE)).astype(np.float32)
            (run_dir / "samples").mkdir(exist_ok=True)
            write(run_dir / "samples" / f"epoch-{epoch:03d}.wav", y)
            row.update(sample=f"samples/epoch-{epoch:03d}.wav", sample_rms=0.3, sample_audible_ratio=1.0,
                       sample_loudness_ratio=0.9, sample_novelty=0.5, sample_loop_period_s=None,
                       sample_flags=[] if epoch > 1 else ["far_from_song"])
        runs.append_metrics(run_dir, row)
    if clips:
        (run_dir / "generated").mkdir()
        write(run_dir / "generated" / "best-2s.wav", sine_song(2.0, freq=330))
    return run_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One run and one sweep, each with its report written once, for the tests that only read them."""
    root = tmp_path_factory.mktemp("built")
    song = write(root / "sine.wav", sine_song(SONG_SECONDS))
    run_dir = make_run(root, song)
    report.write_report(run_dir)
    sweep_dir = make_sweep(root, song)
    report.write_report(sweep_dir)
    return {"song": song, "run": run_dir, "sweep": sweep_dir}


@pytest.fixture
def song(built):
    return built["song"]


@pytest.fixture
def run_dir(built, tmp_path):
    """A copy of the built run (report included, so its figures and scores are cached) that a test may change."""
    return Path(shutil.copytree(built["run"], tmp_path / "run", symlinks=True))


def make_sweep(root: Path, song: Path) -> Path:
    """A finished 3 x 1 sweep: two trial runs (the second scores better) and a failed trial without a run
    directory, results.json and its heatmap."""
    sweep_dir = root / "sweep"
    sweep_dir.mkdir()
    trials = []
    for f, score in ((40, 0.9), (80, 0.5)):
        key = sweeps.trial_key(f, 50)
        make_run(sweep_dir, song, name=key, frame_size=f, epochs=1)
        trials.append({"key": key, "frame_size": f, "seq_len": 50, "status": "done", "reason": "", "error": "",
                       "run_dir": key, "score": score, "val_snr_db": -10 * np.log10(score), "val_mse": score,
                       "zero_mse": 1.0, "copy_mse": 1.2, "vs_copy": score / 1.2, "steps": 20, "samples_seen": 8000,
                       "budget_kind": "samples", "budget": 8000, "sample_pulse_ratio": score, "sample_flags": []})
    trials.append({"key": "f160-t50", "frame_size": 160, "seq_len": 50, "status": "failed", "reason": "",
                   "error": "training diverged: the loss became NaN/inf at step 3", "run_dir": "f160-t50"})
    doc = {"results_version": 1, "sweep": "tiny", "experiment": None, "command": "framegen sweep sine.wav",
           "song": str(song), "song_samples": int(SONG_SECONDS * RATE), "sample_rate": RATE, "val_samples": 9600,
           "budget": {"kind": "samples", "amount": 8000}, "frame_sizes": [40, 80, 160], "seq_lens": [50],
           "machine": "test", "memory_limit_bytes": None, "updated": "2026-11-30T00:00:00+00:00", "trials": trials}
    sweeps.write_results(sweep_dir, doc)
    return sweep_dir


def invoke(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)])


# ---------------------------------------------------------------------------------------------------- pages


def test_run_page_shows_every_clip_with_player_figure_and_metrics(built):
    run_dir = built["run"]
    text = (run_dir / "report.html").read_text()
    for wav in ("samples/epoch-001.wav", "samples/epoch-002.wav", "generated/best-2s.wav", "report/prompt.wav"):
        assert f'src="{wav}"' in text, wav
    assert text.count("<audio ") >= 6  # prompt, generated, 2 samples in the timeline and below, 2 summary picks
    for png in ("report/training.png", "report/generated-best-2s.png", "report/sample-epoch-001.png",
                "report/prompt-prompt.png"):
        assert (run_dir / png).is_file() and f'src="{png}"' in text, png
    assert '<span class="flag warn">far_from_song</span>' in text and "no flags" in text
    for metric in ("frechet_ratio", "novelty", "pulse_ratio", "rhythm_similarity", "continuity_ratio",
                   "transition_jumps", "transition_shuffled", "change_ratio"):
        assert f">{metric}</span>" in text, metric  # the generated clip was scored (no score was on disk)
    assert "too short to score" in text  # the prompt: T x F = 2,000 samples at 8 kHz
    assert 'id="missing"' not in text
    assert "http://" not in text and "https://" not in text  # works offline: no external URL at all
    scores = json.loads((run_dir / "report" / "clips.json").read_text())["clips"]
    assert scores["generated/best-2s.wav"]["evaluation"]["seconds"] == pytest.approx(2.0)


def test_second_report_draws_and_scores_nothing_again(run_dir, monkeypatch):
    figures = {p: p.stat().st_mtime_ns for p in (run_dir / "report").glob("*.png")}

    def fail(*a, **k):
        raise AssertionError("scored again")

    monkeypatch.setattr("framegen.evaluate.evaluate", fail)
    text = report.write_report(run_dir).path.read_text()
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "report").glob("*.png")} == figures
    assert "frechet_ratio" in text


def test_a_score_from_an_older_framegen_is_scored_again(run_dir):
    path = run_dir / "report" / "clips.json"
    doc = json.loads(path.read_text())
    del doc["clips"]["generated/best-2s.wav"]["evaluation"]["pulse_ratio"]  # as before the rhythm metrics
    path.write_text(json.dumps(doc))
    report.write_report(run_dir)
    assert "pulse_ratio" in json.loads(path.read_text())["clips"]["generated/best-2s.wav"]["evaluation"]


def test_new_metrics_and_flags_appear_without_code_changes(run_dir):
    """Every key of the evaluation a caller passes is shown, and every flag highlighted: a metric or flag that
    framegen.evaluate adds later appears on the page as it is."""
    wav = run_dir / "generated" / "best-2s.wav"
    evaluation = {"seconds": 2.0, "groove_score": 0.123456, "key_match": True, "flags": ["off_key", "stuck"]}
    text = report.write_report(run_dir, clips={wav: {"evaluation": evaluation, "settings": {"temperature": 0.9}}}) \
        .path.read_text()
    assert 'groove_score</span> <span class="v">0.1235' in text and 'key_match</span> <span class="v">yes' in text
    assert '<span class="flag warn">off_key</span>' in text and '<span class="flag bad">stuck</span>' in text
    assert "temperature 0.9" in text


def test_embed_inlines_every_audio_and_image(built, tmp_path):
    out = tmp_path / "mail" / "one.html"
    report.write_report(built["run"], out=out, embed=True)
    text = out.read_text()
    assert text.count('src="data:audio/wav;base64,') >= 6 and 'src="data:image/png;base64,' in text
    assert 'src="report/' not in text and 'src="samples/' not in text


def test_out_elsewhere_links_back_into_the_run(built, tmp_path):
    out = tmp_path / "pages" / "r.html"
    report.write_report(built["run"], out=out)
    rel = os.path.relpath(built["run"] / "samples" / "epoch-001.wav", out.parent)
    assert rel.startswith("../") and f'src="{rel}"' in out.read_text()


def test_sweep_page_has_heatmap_table_players_and_trial_pages(built):
    sweep_dir = built["sweep"]
    text = (sweep_dir / "report.html").read_text()
    assert 'src="heatmap.png"' in text
    assert 'href="f40-t50/report.html"' in text and (sweep_dir / "f40-t50" / "report.html").is_file()
    assert 'src="f80-t50/samples/epoch-001.wav"' in text and 'src="f80-t50/generated/best-2s.wav"' in text
    assert '<span class="flag ok">best</span>' in text and 'class="sortable"' in text
    assert '<button type="button">sample pulse ratio</button>' in text  # what results.json records, as it is
    assert "training diverged: the loss became NaN/inf at step 3" in text  # the failed trial says why
    trial_page = (sweep_dir / "f40-t50" / "report.html").read_text()
    assert 'href="../report.html"' in trial_page  # back to the sweep


def test_a_trial_s_report_refreshes_its_sweep_page(built, tmp_path):
    sweep_dir = Path(shutil.copytree(built["sweep"], tmp_path / "sweep", symlinks=True))
    (sweep_dir / "f40-t50" / "generated" / "best-2s.wav").rename(sweep_dir / "f40-t50" / "generated" / "new.wav")
    report.write_report(sweep_dir / "f40-t50")  # as 'framegen generate --run SWEEP/f40-t50' does at its end
    text = (sweep_dir / "report.html").read_text()
    assert 'src="f40-t50/generated/new.wav"' in text


# ---------------------------------------------------------------------------------------------------- bad input


def test_a_directory_that_is_neither_run_nor_sweep_is_one_line(tmp_path):
    (tmp_path / "x").mkdir()
    for target, fragment in ((tmp_path / "x", "is neither a run (no config.json) nor a sweep (no results.json)"),
                             (tmp_path / "nope", "not found"), (tmp_path / "x" / "..", "neither")):
        r = invoke(target)
        assert r.exit_code == 1 and fragment in r.output, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_a_corrupt_config_is_one_line(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{not json")
    r = invoke(tmp_path / "r")
    assert r.exit_code == 1 and "is not a valid framegen config" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_no_run_at_all_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke()
    assert r.exit_code == 1 and "no run found" in r.output and "framegen train" in r.output


def test_a_run_with_no_clips_gets_a_page_that_says_what_is_missing(tmp_path, song):
    run_dir = make_run(tmp_path, song, clips=False, epochs=1)
    (run_dir / "metrics.jsonl").unlink()
    r = invoke(run_dir)
    assert r.exit_code == 0, r.output
    assert "missing: no epoch has finished yet" in r.output
    text = (run_dir / "report.html").read_text()
    assert 'id="missing"' in text and "no epoch has finished yet" in text
    assert "no sample clips yet" in text and "no generated clips yet" in text and "framegen generate --run" in text


def test_a_long_generated_clip_is_read_scored_and_drawn_on_its_last_part_only(run_dir, monkeypatch):
    """A streamed hour must not be loaded whole by the page: its length comes from the header, its last
    SCORE_SECONDS are read, scored and drawn, and the page says so; a clip prompted from a file is compared with
    nothing in the song."""
    from framegen import generate

    monkeypatch.setattr(generate, "SCORE_SECONDS", 1.0)
    write(run_dir / "generated" / "long.wav", sine_song(3.0, freq=250))
    view = report.collect_run(run_dir, clips={run_dir / "generated" / "long.wav": {"settings": {"prompt_file": "x"}}})
    (clip,) = [c for c in view.generated if c.path.name == "long.wav"]
    assert clip.seconds == 3.0 and clip.facts["scored and drawn"] == "its last 1 s" and clip.compare_start is None
    assert clip.metrics is not None and clip.figure.is_file()


def test_a_clip_with_a_path_sidecar_shows_its_path_and_one_without_does_not(run_dir, monkeypatch):
    from framegen import plots, songpath

    y = sine_song(SONG_SECONDS)
    f = 40
    positions = np.concatenate([8000 + np.arange(150) * f, 20000 + np.arange(150) * f])  # 1.5 s: scored
    write(run_dir / "generated" / "pathed.wav", np.concatenate([y[p : p + f] for p in positions]))
    songpath.save(run_dir / "generated" / "pathed.wav",
                  songpath.SongPath(positions=positions, frame_size=f, sample_rate=RATE, prompt_start=6000,
                                    marks={"toward": 2.5}))
    assert report.write_report(run_dir).path == run_dir / "report.html"
    text = (run_dir / "report.html").read_text()
    assert 'src="report/path-pathed.png"' in text and (run_dir / "report" / "path-pathed.png").is_file()
    assert "path of pathed.wav through the song" in text
    assert "path-best-2s" not in text and not (run_dir / "report" / "path-best-2s.png").exists()
    monkeypatch.setattr(plots, "plot_path", lambda *a, **k: pytest.fail("drawn again"))
    view = report.collect_run(run_dir)  # the figure is newer than its sidecar: kept
    (clip,) = [c for c in view.generated if c.path.name == "pathed.wav"]
    assert clip.path_figure == run_dir / "report" / "path-pathed.png"
    assert clip.metrics["longest_copy_s"] == pytest.approx(0.75) and clip.metrics["jumps_exact"] > 0
    assert isinstance(clip.metrics["jump_score_exact"], float)  # the report scored its one jump from the sidecar


def test_missing_wavs_and_a_missing_song_are_named_on_the_page(run_dir, tmp_path):
    song = write(tmp_path / "gone.wav", sine_song(SONG_SECONDS))
    save_config(replace(load_config(run_dir), song=str(song)), run_dir)
    (run_dir / "samples" / "epoch-002.wav").unlink()
    (run_dir / "generated" / "broken.wav").write_bytes(b"RIFF\x00\x00")
    song.unlink()
    r = invoke(run_dir)
    assert r.exit_code == 0, r.output
    text = (run_dir / "report.html").read_text()
    assert "samples/epoch-002.wav is missing" in text and "listed in metrics.jsonl are missing: epoch-002.wav" in text
    assert "cannot read broken.wav" in text
    assert f"the run&#x27;s song {song} is missing" in text
    assert 'src="samples/epoch-001.wav"' in text  # what is there is still shown


def test_open_shows_the_page_in_the_browser(built, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    r = invoke(built["run"], "--open")
    assert r.exit_code == 0, r.output
    assert r.output == f"wrote {built['run'] / 'report.html'}\n"
    assert opened == [(built["run"] / "report.html").resolve().as_uri()]


def test_an_unwritable_out_is_one_line(run_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = invoke(run_dir, "--out", blocker / "r.html")
    assert r.exit_code == 1 and "cannot write the report" in r.output and len(r.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                  None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("chromium or chromedriver is not installed: apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
              "--allow-file-access-from-files", "--window-size=1280,900"):
        opts.add_argument(a)
    opts.binary_location = binary
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    except WebDriverException as e:
        pytest.skip(f"headless chromium does not start here: {str(e).splitlines()[0]}")
    yield driver
    driver.quit()


def _wait(driver, script, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def check_page(driver, page: Path) -> None:
    """What a user would meet: every player loads with the WAV's duration, every image decodes, every link
    leads somewhere, no console error, no sideways scrolling of the page on a phone-sized window."""
    driver.set_window_size(1280, 900)
    driver.get(page.resolve().as_uri())
    assert _wait(driver, "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"), \
        driver.execute_script("return [...document.querySelectorAll('audio')].map(a => [a.src.slice(0, 80), "
                              "a.readyState, a.error && a.error.code])")
    audios = driver.execute_script("return [...document.querySelectorAll('audio')].map(a => "
                                   "[a.getAttribute('src'), a.duration, a.getAttribute('aria-labelledby')])")
    assert audios
    for src, duration, label in audios:
        assert driver.execute_script("var e = document.getElementById(arguments[0]); return e && "
                                     "e.textContent.trim().length > 0", label), f"player {src[:60]} has no label"
        if not src.startswith("data:"):
            info = sf.info(str(page.parent / unquote(src)))
            assert duration == pytest.approx(info.frames / info.samplerate, abs=0.01), src
    assert _wait(driver, "return [...document.images].every(i => i.complete)")
    images = driver.execute_script("return [...document.images].map(i => [i.getAttribute('src').slice(0, 60), "
                                   "i.naturalWidth])")
    assert images and all(width > 0 for _, width in images), images
    for href in driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => "
                                      "a.getAttribute('href'))"):
        url = urlparse(href)
        assert url.scheme == "", f"external link {href}"
        if url.path:
            assert (page.parent / unquote(url.path)).exists(), href
        if url.fragment:
            target = (page.parent / unquote(url.path)) if url.path else page
            assert f'id="{url.fragment}"' in target.read_text(), href
    toc = driver.execute_script("return [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href'))")
    assert len(toc) >= 3 and all(h.startswith("#") for h in toc), toc  # a table of contents, checked above
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    driver.set_window_size(390, 844)  # a phone
    assert _wait(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1", 5.0), \
        driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")


def test_run_page_in_chromium(browser, built, tmp_path):
    check_page(browser, built["run"] / "report.html")
    check_page(browser, report.write_report(built["run"], out=tmp_path / "mail.html", embed=True).path)


def test_sweep_page_in_chromium_sorts_its_table(browser, built):
    sweep_dir = built["sweep"]
    page = sweep_dir / "report.html"
    check_page(browser, page)
    check_page(browser, sweep_dir / "f80-t50" / "report.html")
    browser.set_window_size(1280, 900)
    browser.get(page.resolve().as_uri())
    order = "return [...document.querySelectorAll('#results-table tbody tr')].map(r => r.cells[0].textContent)"
    before = browser.execute_script(order)
    assert [k.split()[0] for k in before] == ["f40-t50", "f80-t50", "f160-t50"]

    def sort_by(heading):
        browser.execute_script("[...document.querySelectorAll('#results-table th button')].find(b => "
                               "b.textContent === arguments[0]).click()", heading)
        return [k.split()[0] for k in browser.execute_script(order)]

    assert sort_by("val / zero") == ["f80-t50", "f40-t50", "f160-t50"]  # ascending: the better trial first
    assert sort_by("val / zero") == ["f40-t50", "f80-t50", "f160-t50"]  # again: descending; no score stays last
    assert sort_by("F") == ["f40-t50", "f80-t50", "f160-t50"]
    assert sort_by("F") == ["f160-t50", "f80-t50", "f40-t50"]
    assert sort_by("status") == ["f80-t50", "f40-t50", "f160-t50"]  # done, done, failed; ties keep their order
    sorted_by = "return document.querySelector('#results-table th[aria-sort]').textContent"
    assert browser.execute_script(sorted_by) == "status"


# ------------------------------------------------------------------------------------------------ written on its own


@pytest.mark.slow
def test_train_and_generate_write_the_report_and_a_failing_report_fails_neither(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = write(tmp_path / "song.wav", sine_song(10.0))
    tiny = ["-F", "40", "-T", "50", "--hidden", "199", "--batch-size", "8", "--sample-rate", "8000",
            "--sample-every", "1", "--epochs", "1", "--clock", "none", "--run-dir", "r"]
    r = CliRunner().invoke(cli, ["train", str(song), *tiny])
    assert r.exit_code == 0, r.output
    assert "report: r/report.html" in r.output
    assert 'src="samples/epoch-001.wav"' in (tmp_path / "r" / "report.html").read_text()

    r = CliRunner().invoke(cli, ["generate", "--run", "r", "--seconds", "1.5", "--temperature", "0.5"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "r" / "report.html").read_text()
    assert 'src="generated/best-1.5s.wav"' in text and "temperature 0.5" in text

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report, "write_report", broken)
    r = CliRunner().invoke(cli, ["generate", "--run", "r", "--seconds", "1.5", "--out", "x.wav"])
    assert r.exit_code == 0, r.output
    # the last line (an untrained MSE run's output may also be told what to try next above it)
    assert r.stderr.strip().splitlines()[-1] == ("warning: the listening report was not written (disk on fire): run "
                                                 "'framegen report r' later")
