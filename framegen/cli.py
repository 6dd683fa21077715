"""The ``framegen`` command: parse options, call one library function, print the result.

Every ``FramegenError`` becomes one line on stderr and its exit code; no traceback reaches the user
(set FRAMEGEN_DEBUG=1 to see one for an unexpected error).
The longest module because click declares the options and help texts of eight commands here (the training options
once, in ``_TRAINING``, for train and sweep); defaults and checks come from framegen.config and the library.
"""

import json
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import click

from framegen import __version__, interrupts
from framegen.config import (CHECKPOINTS, CLOCKS, CODEBOOK_KINDS, DEMO_MINUTES, FRAME_RANGE, HIDDEN_RANGE, OUTPUTS,
                             PRECISIONS, SEQ_RANGE, TRAIN_CLOCK, CROSSFADE_MS, SELECT_HOLD, SELECT_MAX_RUN_S, SELECTS,
                             VQ_EMITS,
                             DataConfig, GenerateConfig, ModelConfig, RunConfig, TrainConfig, parse_duration)
from framegen.display import RichReporter, RichSweepDisplay
from framegen.errors import FramegenError, FramegenWarning, UsageError

# Defaults shown in --help are read from the config classes: config.py is where they are decided.
_D, _M, _T, _G = DataConfig, ModelConfig, TrainConfig, GenerateConfig


class _Group(click.Group):
    """Maps library errors to click errors and library warnings to stderr lines in one place, so CliRunner tests
    see what a user sees."""

    def invoke(self, ctx):
        try:
            with _warnings_on_stderr():
                return super().invoke(ctx)
        except FramegenError as e:
            err = click.ClickException(str(e))
            err.exit_code = e.exit_code
            raise err from None
        except KeyboardInterrupt:  # Ctrl-C outside the training loop (loading, compiling): the shell's 130
            err = click.ClickException("interrupted by Ctrl-C")
            err.exit_code = 130
            raise err from None


@contextmanager
def _warnings_on_stderr():
    """Each ``FramegenWarning`` (a run that cannot be verified, a fallback to another checkpoint) as one
    ``warning: ...`` line on stderr, once per command however often the library finds it."""
    shown = set()
    with warnings.catch_warnings():
        warnings.simplefilter("always", FramegenWarning)
        other = warnings.showwarning

        def show(message, category, *args, **kwargs):
            if not issubclass(category, FramegenWarning):
                other(message, category, *args, **kwargs)
            elif str(message) not in shown:
                shown.add(str(message))
                click.echo(f"warning: {message}", err=True)

        warnings.showwarning = show
        yield


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="framegen")
def cli():
    """framegen learns the raw audio of one long song with a GRU and continues it.

    \b
    Examples:
      framegen demo                        # built-in song: train 2 minutes, generate 10 s, say how it did
      framegen info song.ogg               # what is in the file, which F x T fit
      framegen train song.wav              # train with the defaults (F=800, T=100, GRU 2x256)
      framegen generate --seconds 30       # continue the song from the latest run
      framegen report --open               # listen: players, spectrograms and metrics on one page
    """


# ------------------------------------------------------------------------------------------------ training options

class _Opt(NamedTuple):
    """A training option, declared once for ``train`` (with the config's default, shown in --help) and ``sweep``
    (default None: only the flags given override the experiment file)."""

    decls: tuple  # the flags, then the keyword name where it differs from the flag's
    type: object
    default: object  # train's default, read from framegen.config; None: RunConfig.from_options decides it
    help: str
    sweep_help: str | None = None  # where a sweep's meaning or default differs
    sweep: bool = True  # False: a sweep decides it itself (its axes and budget)


def _span(lo_hi) -> str:
    return f"{lo_hi[0]:,}-{lo_hi[1]:,}"


_TRAINING = (
    _Opt(("--frame-size", "-F"), int, _D.frame_size, f"F: samples per frame ({_span(FRAME_RANGE)}).", sweep=False),
    _Opt(("--seq-len", "-T"), int, _D.seq_len, f"T: frames per training sequence ({_span(SEQ_RANGE)}).",
         sweep=False),
    _Opt(("--sample-rate",), int, _D.sample_rate, "The song is resampled to this rate (Hz)."),
    _Opt(("--val-fraction",), float, _D.val_fraction, "Share of the song's end held out for validation."),
    _Opt(("--hidden",), int, _M.hidden, f"GRU units per layer ({_span(HIDDEN_RANGE)})."),
    _Opt(("--layers",), int, _M.layers, "GRU layers."),
    _Opt(("--epochs",), int, None, f"Epochs (default {_T.epochs}).", "Epoch cap of a --budget-seconds trial."),
    _Opt(("--batch-size",), int, _T.batch_size, "Examples per step."),
    _Opt(("--lr",), float, _T.lr, "Peak learning rate of Adam."),
    _Opt(("--seed",), int, _T.seed, "RNG seed of the run (parameter init, data order, codebook, sample clips)."),
    _Opt(("--max-minutes",), float, None, "Stop cleanly after this many minutes of training, checkpoint saved.",
         sweep=False),
    _Opt(("--max-steps",), int, None, "Stop after this many optimizer steps in all (equal-steps comparisons).",
         sweep=False),
    _Opt(("--sample-every",), int, _T.sample_every, "Write samples/epoch-NNN.wav every N epochs (0: never).",
         "Write samples/epoch-NNN.wav every N epochs (default: the experiment file's, else never)."),
    _Opt(("--feedback-prob",), float, _T.feedback_prob,
         "Scheduled sampling: share of input frames replaced by the model's own prediction."),
    _Opt(("--input-noise",), float, _T.input_noise, "Std of Gaussian noise added to input frames (song std = 1)."),
    _Opt(("--output",), click.Choice(OUTPUTS), _M.output,
         "mse: predict the next frame's samples. vq: predict a softmax over a k-means codebook of the song's frames "
         "(trained with cross-entropy; generation samples a code)."),
    _Opt(("--codebook",), int, _M.codebook, "K codes for --output vq."),
    _Opt(("--codebook-kind",), click.Choice(CODEBOOK_KINDS), _M.codebook_kind,
         "vq: k-means on unit-norm frames with a level per code (gain-shape), or on raw frames."),
    _Opt(("--vq-emit",), click.Choice(VQ_EMITS), _M.vq_emit,
         "vq: what a sampled code plays and feeds back: one of its real training frames (exemplar), its centroid, or "
         "the centroid at its frames' mean loudness (scaled)."),
    _Opt(("--precision",), click.Choice(PRECISIONS), _M.precision,
         "Matmul precision: bf16 (float32 accumulation, float32 weights and state) or fp32; auto is bf16 on GPUs and "
         "bf16-capable CPUs. Saved in the run."),
    _Opt(("--crossfade", "crossfade_ms"), float, None,
         f"Smooth frame borders of sample clips over this many ms, and generate's default (0: off). Default: "
         f"{CROSSFADE_MS:g} when generation plays real frames (they are overlap-added with their real surroundings), "
         f"0 for --output mse --select off.",
         "Smooth frame borders of sample clips over this many ms (default: the experiment file's, else 0: off)."),
    _Opt(("--clock",), click.Choice(CLOCKS), TRAIN_CLOCK,
         "Beat clock: every input frame also reads the song's beat and bar phase (tracked once), continued at the "
         "song's tempo when generating. auto: on when the song has a pulse."),
    _Opt(("--tiers",), None, None,
         "Slower GRU tiers above the frame GRU, fastest first: '8' steps a tier once per 8 frames, '8,4' adds one "
         "more per 32 frames. Each conditions the tier below (SampleRNN's tower). --seq-len must be a multiple of "
         "their product. Default: none (one tier)."),
    _Opt(("--tier-hidden",), int, None, f"GRU units per layer of each tier (default {_M.tier_hidden})."),
    _Opt(("--tier-layers",), int, None, f"GRU layers per tier (default {_M.tier_layers})."),
    _Opt(("--select",), click.Choice(SELECTS), None,
         "generate's default: play real stretches of the song chosen by the model (model), by uniform scores "
         "(uniform: the baseline), or feed predictions back (off). Default: model.",
         "unit selection of sample clips (default: the experiment file's, else model)."),
    _Opt(("--hold",), float, None,
         f"unit selection: weight of the continuation of what plays against a jump (generate's default; "
         f"{SELECT_HOLD:g}: the model's scores alone decide; 0 with --output mse --select off).",
         "unit selection: weight of the continuation (default: the experiment file's, else 0)."),
    _Opt(("--max-run", "max_run_s"), float, None,
         f"unit selection: longest stretch of the song played as it is, seconds, before a jump is forced "
         f"(generate's default; {SELECT_MAX_RUN_S:g}).",
         "unit selection: longest stretch played as it is, seconds (default: the experiment file's, else 0)."),
)


def _training_options(command: str):
    """The ``_TRAINING`` options as ``command`` ("train" or "sweep") takes them."""
    sweep = command == "sweep"

    def apply(f):
        for o in reversed([o for o in _TRAINING if o.sweep or not sweep]):
            default = None if sweep else o.default
            f = click.option(*o.decls, type=o.type, default=default, show_default=default is not None,
                             help=(o.sweep_help or o.help) if sweep else o.help)(f)
        return f

    return apply


# ------------------------------------------------------------------------------------------------ commands

@cli.command()
@click.option("--runs-root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Where the demo song and its run go.")
@click.option("--minutes", type=float, default=DEMO_MINUTES, show_default=True, help="Training time budget.")
def demo(runs_root, minutes):
    """Built-in default job: synthesise a 72 s song, train a VQ-mode model on it for 2 minutes, generate 10 s.

    Needs no file and no download. Prints where the song, the run and the generated WAV are, the verdict on the
    WAV in words, and the command that does the same with your own song.
    """
    from framegen import synth
    from framegen.demo import in_words, own_song_command, run_demo

    r = run_demo(runs_root=runs_root, minutes=minutes, reporter=RichReporter())
    last = r.train.metrics[-1] if r.train.metrics else {}
    click.echo(f"demo song:  {r.song}  ({synth.DEMO_SECONDS:g} s at {synth.DEMO_BPM:g} bpm, new notes every bar)")
    click.echo(f"run:        {r.train.run_dir}  (step {r.train.step}, val MSE {last.get('val_mse', float('nan')):.4f}"
               f" vs zero predictor {last.get('zero_mse', float('nan')):.4f})")
    click.echo(f"generated:  {r.generated.path}  ({r.generated.seconds:.3f} s, RMS {r.generated.rms:.4f})")
    ev = r.generated.evaluation
    click.echo(f"verdict:    {in_words(ev) if ev else 'not scored'}")
    click.echo(f"evaluation: framegen evaluate {r.generated.path} --reference {r.song}")
    _write_report(r.train.run_dir, clips={r.generated.path: {"evaluation": ev.to_dict() if ev else None}})
    click.echo(f"your song:  {own_song_command(minutes)}")


@cli.command()
@click.argument("song", type=click.Path(path_type=Path))
@click.option("--sample-rate", type=int, default=_D.sample_rate, show_default=True,
              help="Rate the song would be trained at.")
@click.option("--val-fraction", type=float, default=_D.val_fraction, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(song, sample_rate, val_fraction, as_json):
    """Duration, rate and channels of SONG, and which frame/sequence sizes fit it.

    \b
    Example:
      framegen info song.ogg
    """
    from framegen import audio, data

    DataConfig(sample_rate=sample_rate, val_fraction=val_fraction)  # validates the options
    facts = audio.describe(song)
    n = int(round(facts["seconds"] * sample_rate))
    table = data.fit_table(n, sample_rate, val_fraction)
    if as_json:
        click.echo(json.dumps({**facts, "samples_at_rate": n, "fits": {str(f): {str(t): ok for t, ok in row.items()}
                                                                         for f, row in table.items()}}))
        return
    click.echo(f"{facts['path']}: {facts['seconds']:.2f} s, {facts['sample_rate']} Hz, "
               f"{facts['channels']} channel(s), {facts['format']}")
    click.echo(f"at {sample_rate} Hz: {n:,} samples; the last {val_fraction:.0%} is held out for validation")
    click.echo("fits (F frame size down, T sequence length across):")
    click.echo("F \\ T  " + "".join(f"{t:>7}" for t in data.FIT_SEQS))
    for f, row in table.items():
        click.echo(f"{f:>6} " + "".join(f"{'yes' if ok else '-':>7}" for ok in row.values()))


@cli.command()
@click.argument("song", type=click.Path(path_type=Path), required=False)
@_training_options("train")
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (default runs/<song>-f<F>-t<T>-<time>).")
@click.option("--resume", "resume", type=click.Path(path_type=Path), default=None,
              help="Continue RUN_DIR from its last checkpoint (same epoch, step, optimizer state, data order).")
def train(song, run_dir, resume, **opts):
    """Train a GRU on SONG (WAV, FLAC, OGG, MP3) to predict each next frame.

    \b
    Examples:
      framegen train song.wav
      framegen train song.wav --frame-size 400 --seq-len 200 --epochs 10
      framegen train song.wav --max-minutes 20
      framegen train song.wav --output vq -F 400 -T 96 --tiers 8,4
      framegen train --resume runs/song-f800-t100-20261123-120000 --epochs 60
    """
    from framegen.train import resume_run, train_song

    reporter = RichReporter()
    try:
        if resume is not None:
            if song is not None:
                raise UsageError("pass either SONG or --resume RUN_DIR, not both")
            result = resume_run(resume, epochs=opts["epochs"], max_minutes=opts["max_minutes"], reporter=reporter)
        else:
            if song is None:
                raise UsageError("no song given: pass a file, e.g. 'framegen train song.wav', or --resume RUN_DIR")
            result = train_song(song, RunConfig.from_options(**opts), run_dir=run_dir, reporter=reporter)
    finally:
        reporter.close()
    how = "time budget reached" if result.stopped == "max_minutes" else "done"
    click.echo(f"{how}: {result.step} steps ({result.epoch:.2f} epochs); run saved in {result.run_dir}")
    _write_report(result.run_dir)
    click.echo(f"next: framegen generate --run {result.run_dir} --seconds 30")


class _Aliased(click.Option):
    """An option whose later flags are earlier spellings kept for scripts: accepted, not shown in --help."""

    def get_help_record(self, ctx):
        shown, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


class _Duration(click.ParamType):
    """A length of audio: seconds (``90``, ``2.5``), with units (``90m``, ``10h``, ``1h30m``, ``45s``) or H:MM:SS."""

    name = "SECONDS"

    def convert(self, value, param, ctx):
        try:
            return parse_duration(value)
        except ValueError:
            self.fail(f"{value!r} is not a length: pass seconds (90), a unit (90m, 10h, 1h30m) or H:MM:SS", param, ctx)


@cli.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: the most recent under runs/).")
@click.option("--checkpoint", "checkpoint_kind", type=click.Choice(CHECKPOINTS), default=_G.checkpoint,
              show_default=True)
@click.option("--seconds", type=_Duration(), default=_G.seconds, show_default=True,
              help="Length of the new audio: seconds, or with a unit (90m, 10h, 1h30m) or as H:MM:SS. Any length "
                   "streams to disk in constant memory.")
@click.option("--prompt-file", "--seed-file", "prompt_file", cls=_Aliased, type=click.Path(path_type=Path),
              default=None,
              help="Prime with your own audio: warm the model on frames of FILE (WAV, FLAC, OGG, MP3, any rate or "
                   "channels; mixed to mono and resampled to the run's rate) instead of the song. FILE is "
                   "normalised with the run's normalisation (the training song's mean and std), not its own, so "
                   "the model hears the levels it was trained on. Default prompt: the file's last frames.")
@click.option("--prompt-offset", "--seed-offset", "prompt_offset", cls=_Aliased, type=float, default=None,
              help="Where the prompt starts in the song (or in --prompt-file), in seconds (default: the held-out "
                   "tail's start; with --prompt-file, so the prompt ends at the file's end).")
@click.option("--prompt-frames", "--seed-frames", "prompt_frames", cls=_Aliased, type=int, default=None,
              help="Prompt length in frames (default: the run's T).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output WAV (default RUN/generated/<checkpoint>-<seconds>s.wav).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--streams", type=int, default=_G.streams, show_default=True,
              help="Write N different continuations at once: stream i's prompt starts i prompt lengths after the "
                   "first.")
@click.option("--temperature", type=float, default=_G.temperature, show_default=True,
              help="VQ runs: sampling temperature of the code softmax (0: always the likeliest code).")
@click.option("--top-k", type=int, default=_G.top_k, show_default=True,
              help="VQ runs: sample among the K likeliest codes only (0: all).")
@click.option("--vq-emit", type=click.Choice(VQ_EMITS), default=None,
              help="VQ runs: what a code plays (default: the run's setting).")
@click.option("--crossfade", "crossfade_ms", type=float, default=None,
              help="Smooth every frame border over this many ms with a raised-cosine ramp (default: the run's, "
                   "0 = off).")
@click.option("--sample-seed", type=int, default=_G.sample_seed, show_default=True,
              help="VQ runs: RNG seed of the code sampling.")
@click.option("--no-score", is_flag=True, help="Do not score what was written against the song.")
@click.option("--select", type=click.Choice(SELECTS), default=None,
              help="model: play real stretches of the song, jumping on the beat to where the model's prediction "
                   "after what was played matches its prediction from that place's own past; uniform: the same "
                   "with every candidate alike (the baseline); off: feed the model's predictions back (MSE) or "
                   "play its sampled codes' exemplars (VQ). Default: the run's (model).")
@click.option("--hold", type=float, default=None,
              help="Unit selection: weight of the continuation of what plays against a jump (default: the run's).")
@click.option("--max-run", "max_run_s", type=float, default=None,
              help="Unit selection: longest stretch of the song played as it is, seconds (default: the run's).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Matmul precision of generation (default: the run's, the one it was trained in).")
@click.option("--intro", is_flag=True,
              help="Start with the song's own opening (instead of continuing a prompt); the model takes over "
                   "after two bars.")
@click.option("--ending", is_flag=True,
              help="End with the song's own last bars (at least 4: its final cadence or fade), entered on a beat "
                   "the model chose; the file is still exactly --seconds long.")
@click.option("--toward", type=_Duration(), multiple=True,
              help="A passage of the song to arrive at (song time: 1:12, 72, 72s), gradually: jumps are pulled "
                   "toward material like it, and it plays from its beat by --by. Repeat for A then B.")
@click.option("--by", type=_Duration(), multiple=True,
              help="Output time to arrive at each --toward by (one per --toward; default: spread evenly).")
@click.option("--loop", is_flag=True,
              help="A seamless loop: the output's end leads into its start through a stretch of the song the model "
                   "chose, so a player looping the file hears no seam.")
def generate(run_dir, checkpoint_kind, seconds, prompt_file, prompt_offset, prompt_frames, out, overwrite, streams,
             temperature, top_k, vq_emit, crossfade_ms, sample_seed, no_score, select, hold, max_run_s, precision,
             intro, ending, toward, by, loop):
    """Continue the song: warm the model on a prompt from it (or from your own --prompt-file), feed predictions back,
    write a 16-bit WAV.

    The WAV is streamed to OUT.partial.wav a chunk at a time (memory does not grow with --seconds; a bar shows the
    seconds written and the real-time factor) and renamed to OUT when complete. Ctrl-C or a kill leaves
    OUT.partial.wav as a valid WAV of what was written, and an earlier OUT untouched.
    Each WAV is then scored against the song ('framegen evaluate'; a clip over a minute on its last minute) and its
    flags printed; a silent, noise-like, stuck or static result is also reported on stderr.

    \b
    Examples:
      framegen generate --seconds 30
      framegen generate --run runs/song-f800-t100-20261123-120000 --prompt-offset 42.5 --out cont.wav
      framegen generate --run runs/song-vq --temperature 0.9 --top-k 50 --crossfade 2
      framegen generate --prompt-file my-intro.flac --seconds 60
      framegen generate --seconds 10h --no-score
      framegen generate --seconds 3:40 --intro --ending        # a video's length, opening to final cadence
      framegen generate --seconds 60 --loop                    # a game level's seamless loop
      framegen generate --seconds 40 --toward 1:12 --by 20     # reach the passage at 1:12 20 s in
    """
    from framegen import runs
    from framegen.display import GenerateProgress
    from framegen.explain import transition_text
    from framegen.generate import generate as gen
    from framegen.generate import warnings_for

    run_dir = run_dir or runs.latest_run()
    bar = GenerateProgress()
    try:
        written = gen(run_dir, seconds=seconds, checkpoint_kind=checkpoint_kind, prompt_offset=prompt_offset,
                      prompt_frames=prompt_frames, prompt_file=prompt_file, out=out, overwrite=overwrite,
                      streams=streams, temperature=temperature, top_k=top_k, vq_emit=vq_emit, crossfade_ms=crossfade_ms,
                      sample_seed=sample_seed, score=not no_score, select=select, hold=hold, max_run_s=max_run_s,
                      precision=precision, intro=intro, ending=ending, loop=loop, toward=toward, by=by,
                      progress=bar)
    finally:
        bar.close()
    for g in written:
        click.echo(f"wrote {g.path}  ({g.seconds:.3f} s, RMS {g.rms:.4f}) from {g.run_dir}")
        if g.evaluation is not None:
            ev = g.evaluation
            part = f" (scored on its last {g.scored_seconds:g} s)" if g.scored_seconds < g.seconds else ""
            click.echo(f"  flags: {', '.join(ev.flags) or 'none'}{part}  (audible {ev.audible_ratio:.2f}, loudness "
                       f"{ev.loudness_ratio:.2f}, noise-likeness {ev.noise_likeness:.2f}, Frechet ratio "
                       f"{ev.frechet_ratio:.2f}, novelty {ev.novelty:.2f})")
            click.echo(f"  rhythm: pulse ratio {ev.pulse_ratio:.2f}, rhythm similarity {ev.rhythm_similarity:.2f} "
                       f"(real {ev.rhythm_similarity_real:.2f}), continuity ratio {ev.continuity_ratio:.2f}")
            click.echo(f"  transitions: {transition_text(ev)}")
        for line in warnings_for(g):
            click.echo(line, err=True)
    settings = {k: v for k, v in dict(checkpoint=checkpoint_kind, prompt_offset=prompt_offset,
                                      prompt_frames=prompt_frames,
                                      prompt_file=str(prompt_file) if prompt_file else None,
                                      temperature=temperature, top_k=top_k, vq_emit=vq_emit,
                                      crossfade_ms=crossfade_ms, sample_seed=sample_seed, select=select,
                                      hold=hold, max_run_s=max_run_s, intro=intro or None, ending=ending or None,
                                      loop=loop or None, toward=list(toward) or None,
                                      by=list(by) or None).items() if v is not None}
    _write_report(run_dir, clips={g.path: {"evaluation": g.evaluation.to_dict() if g.evaluation else None,
                                           "settings": {**settings, "stream": i, "streams": len(written)}}
                                  for i, g in enumerate(written)})


def _evaluate_help() -> str:
    """``framegen evaluate``'s help: every metric as framegen.evaluate.METRICS documents it."""
    from framegen.evaluate import metric_reference

    return (
        "Score GENERATED (a WAV from 'framegen generate') against SONG: is it silent, noise, stuck in a loop, a copy "
        "of the song, far from it, or without its beat? Plain signal processing (numpy/scipy/librosa), no learned "
        "model. Exits 0 even when flags are raised (they are printed); a missing or unreadable file is a one-line "
        "error.\n\n"
        "\b\nMetrics (framegen.evaluate.METRICS):\n" + metric_reference() + "\n\n"
        "\b\nExamples:\n  framegen evaluate runs/x/generated/best-30s.wav --reference song.ogg\n"
        "  framegen evaluate out.wav --reference song.ogg --json --plot out-vs-song.png"
    )


class _EvaluateCommand(click.Command):
    """Builds its help from framegen.evaluate's docstrings only when help is shown (keeps CLI start-up light)."""

    def format_help_text(self, ctx, formatter):
        self.help = _evaluate_help()
        super().format_help_text(ctx, formatter)


@cli.command(cls=_EvaluateCommand, short_help="Score a generated WAV against the song: metrics and flags.")
@click.argument("generated", type=click.Path(path_type=Path))
@click.option("--reference", "-r", type=click.Path(path_type=Path), required=True,
              help="The song the model learned (any audio file; resampled to GENERATED's rate when they differ).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every metric and the flags.")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Write a PNG with the generated and song spectrograms side by side and their onset envelopes.")
def evaluate(generated, reference, as_json, plot):
    from framegen.evaluate import evaluate_files
    from framegen.explain import format_report

    ev = evaluate_files(generated, reference)
    if plot is not None:
        from framegen import audio
        from framegen.evaluate import load_mono
        from framegen.plots import plot_evaluation

        gen, rate = load_mono(generated)
        ref, ref_rate = load_mono(reference)
        try:
            plot_evaluation(plot, gen, audio.resample(ref, ref_rate, rate), rate, ev)
        except OSError as e:
            raise UsageError(f"cannot write the plot {plot} ({e.strerror or e}): pass a writable --plot path") from None
    if as_json:
        click.echo(json.dumps({"generated": str(generated), "reference": str(reference), **ev.to_dict()}))
    else:
        click.echo(f"{generated} vs {reference}")
        click.echo(format_report(ev))
        if plot is not None:
            click.echo(f"plot: {plot}")


@cli.command()
@click.argument("target", type=click.Path(path_type=Path), required=False)
@click.option("--song", type=click.Path(path_type=Path), default=None, help="The song (overrides the file's).")
@click.option("--frame-sizes", "-F", default=None, help="F values, comma-separated, e.g. 40,100,800.")
@click.option("--seq-lens", "-T", default=None, help="T values, comma-separated, e.g. 50,100,1000.")
@click.option("--budget-samples", type=float, default=None,
              help="Training samples per trial, B*T*F per step (default 100,000,000).")
@click.option("--budget-seconds", type=float, default=None,
              help="Training seconds per trial instead (compile time excluded).")
@click.option("--name", default=None, help="Sweep name (default: the file's stem, or 'adhoc').")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Sweep directory (default experiments/results/<name>).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one trial after another in this process; ray: one Ray task per trial.")
@click.option("--address", default=None, help="Ray cluster address for ray.init (default: start a local Ray).")
@click.option("--auto-batch/--no-auto-batch", default=None,
              help="Reduce the batch of cells that would not fit memory or the budget (recorded).")
@click.option("--memory-gb", type=float, default=None,
              help="Memory per trial to plan against (default: the device's, or this machine's available RAM).")
@click.option("--retry-failed", is_flag=True, help="Run trials recorded as failed again.")
@click.option("--dry-run", is_flag=True, help="Print the plan (trials, budget, skipped cells) and exit.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Re-draw table, heatmap and best link of the sweep in DIR from its results.json.")
@_training_options("sweep")
def sweep(target, song, frame_sizes, seq_lens, budget_samples, budget_seconds, name, out, executor, address,
          auto_batch, memory_gb, retry_failed, dry_run, report_dir, **opts):
    """Train one run per frame size F x sequence length T, each with the same budget, and compare them.

    TARGET is an experiment file (.toml) or a song. Every trial is scored on the same held-out tail of the song
    (validation MSE / zero-predictor MSE); results go to experiments/results/<name>/: results.csv, .json, .md,
    heatmap.png and a `best` link to the best trial's run. Re-running skips finished trials and resumes the rest.

    \b
    Examples:
      framegen sweep song.wav --frame-sizes 40,100,800,4000 --seq-lens 50,100,1000
      framegen sweep experiments/quick.toml --song song.wav
      framegen sweep experiments/blog-grid.toml --song song.wav --dry-run
      framegen sweep experiments/blog-grid.toml --song song.wav --executor ray --address auto
      framegen sweep --report experiments/results/quick
      framegen generate --run experiments/results/quick/best --seconds 30
    """
    from click.core import ParameterSource

    from framegen import sweep as sweeps

    if report_dir is not None:
        doc = sweeps.report(report_dir)
        click.echo(sweeps.results_markdown(doc), nl=False)
        click.echo(f"redrew results.md, results.csv, heatmap.png and best in {report_dir}")
        return
    experiment = None
    if target is not None and target.suffix.lower() == ".toml":
        experiment = target
    elif target is not None:
        if song is not None:
            raise UsageError("pass the song once: as SONG or as --song, not both")
        song = target
    spec = sweeps.make_spec(experiment, song=song, frame_sizes=frame_sizes, seq_lens=seq_lens,
                            budget_samples=budget_samples, budget_seconds=budget_seconds, name=name,
                            auto_batch=auto_batch, memory_gb=memory_gb, flags=opts)
    plan = sweeps.plan_sweep(spec, out, retry_failed=retry_failed)
    click.echo(sweeps.format_plan(plan))
    if dry_run:
        return
    ctx = click.get_current_context()
    given = [str(target)] if target is not None else []
    for p in ctx.command.params:
        if p.name != "target" and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE:
            value = ctx.params[p.name]
            value = int(value) if isinstance(value, float) and value.is_integer() else value
            given += [p.opts[0]] if value is True else [p.opts[0], str(value)]
    doc = sweeps.run_sweep(plan, executor=executor, address=address, display=RichSweepDisplay(),
                           command=" ".join(["framegen sweep", *given]))
    counts = {s: sum(r["status"] == s for r in doc["trials"]) for s in ("done", "failed", "skipped")}
    click.echo(f"sweep {spec.name}: {counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped; "
               f"results in {plan.sweep_dir}/ (results.md, results.csv, results.json, heatmap.png)")
    _write_report(plan.sweep_dir)
    best = sweeps.best_trial(doc)
    if best:
        click.echo(f"best: {best['key']} (val MSE / zero MSE {best['score']:.3f}, SNR {best['val_snr_db']:+.2f} dB)")
        click.echo(f"next: framegen generate --run {plan.sweep_dir / 'best'} --seconds 30")


@cli.command()
@click.argument("target", type=click.Path(path_type=Path), required=False)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the page here (default: TARGET/report.html).")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default web browser.")
@click.option("--embed", is_flag=True,
              help="Inline audio and images (base64) into one self-contained file that can be mailed.")
def report(target, out, open_page, embed):
    """Write the HTML listening report of a run or a sweep (TARGET; default: the latest run).

    A run's page: config and song, loss curves, then for the prompt, every generated clip and every epoch's sample
    clip a player, its spectrogram and onset envelope beside the song's, and its metrics with flags highlighted;
    the samples also as a timeline. A sweep's page: heatmap, sortable results table, and every trial's sample and
    best generated clip with its flags and a link to its run page. A static page that works offline; it is also
    written at the end of train, generate and sweep.

    \b
    Examples:
      framegen report                                   # the latest run
      framegen report runs/song-f800-t100-20261123-120000 --open
      framegen report experiments/results/quick         # a sweep, and each trial's page
      framegen report runs/x --embed --out x.html       # one self-contained file to mail
    """
    from framegen import runs
    from framegen.report import open_in_browser, write_report

    page = write_report(target if target is not None else runs.latest_run(), out=out, embed=embed)
    click.echo(f"wrote {page.path}")
    for line in page.missing:
        click.echo(f"  missing: {line}")
    if open_page:
        open_in_browser(page.path)


def _write_report(target, **kw) -> None:
    """The listening report after train, generate and sweep: never fails the command that made the audio."""
    try:
        from framegen.report import write_report

        page = write_report(target, **kw)
    except Exception as e:  # noqa: BLE001 - the command's own work is done and saved; one line says what to do
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        click.echo(f"warning: the listening report was not written ({first}): run 'framegen report {target}' "
                   f"later", err=True)
        return
    click.echo(f"report: {page.path}")


@cli.command()
@click.option("--frame-size", "-F", type=int, default=None,
              help="Also time this F (with --seq-len, --batch-size; default train's).")
@click.option("--seq-len", "-T", type=int, default=None, help="T of the extra config (default train's).")
@click.option("--batch-size", "-B", type=int, default=None, help="B of the extra config (default 32).")
@click.option("--compare", type=click.Choice(["torch"]), default=None,
              help="Time PyTorch doing the same work in the same run (pip install 'framegen[bench]').")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per measurement instead of tables.")
@click.option("--quick", is_flag=True, help="A tiny config, a few steps: checks the bench runs (seconds).")
@click.option("--precision", "precisions", default=None,
              help="framegen's precisions to time, comma-separated (fp32, bf16, auto; default fp32 and bf16); torch "
                   "runs the same ones (bf16: autocast and a bf16-cast model).")
@click.option("--tiers", default=None,
              help="Also time and measure framegen with these slower tiers (e.g. 8 or 8,4; see train --help) beside "
                   "the flat model, at the same F, T, B (each T rounded down to a multiple of their product).")
@click.option("--steps", type=int, default=None, help="Timed train steps per config (default 10, --quick 3).")
@click.option("--only", default=None,
              help="Comma-separated parts to run: train, matmul, generate, memory, host (default: all).")
def bench(frame_size, seq_len, batch_size, compare, as_json, quick, steps, only, precisions, tiers):
    """Time framegen's train step, generation, memory and host overhead (optionally against PyTorch).

    Train step: F x T x B = 800x100x128, 40x1000x32, 4000x50x32, 100x1000x128 (plus the one given by flags),
    median ms over 10 steps, % of the arithmetic floor (step FLOPs / this machine's matmul rate). Matmul: the
    step's recurrent and input-projection products alone, in each implementation (where the time goes). Generation:
    seconds of audio per wall second for 30 s at F=800 and F=40, 1 and 16 streams. Memory: peak RSS of training at
    F=40, T=10,000, B=32 in a fresh process. Results of measured machines: experiments/bench/.

    \b
    Examples:
      framegen bench --compare torch
      framegen bench --compare torch --json > bench.jsonl
      framegen bench -F 400 -T 200 -B 64 --quick
      framegen bench -F 400 -T 96 -B 32 --quick --tiers 8 --precision fp32
    """
    from framegen import bench as benchmark

    def log(row):
        if as_json:
            click.echo(json.dumps(row))
        elif row["what"] != "end":
            click.echo(f"  {row['what']} {row['impl']} " + " ".join(
                f"{k}={v}" for k, v in row.items() if k not in ("what", "impl")), err=True)

    options = benchmark.parse_flags(frame_size=frame_size, seq_len=seq_len, batch_size=batch_size, steps=steps,
                                    only=only, precisions=precisions, tiers=tiers)
    rows = benchmark.run(compare=compare, quick=quick, log=log, **options)
    if not as_json:
        click.echo(benchmark.format_tables(rows), nl=False)


def main():
    interrupts.for_the_process()  # the process's own: a second Ctrl-C ends it at once, whatever it is doing
    try:
        cli.main(prog_name="framegen", standalone_mode=True)
    except SystemExit as e:
        interrupts.end_if_stopped(0 if e.code is None else e.code if isinstance(e.code, int) else 1)
        raise
    except Exception as e:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if os.environ.get("FRAMEGEN_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"Error: unexpected {type(e).__name__}: {first[:300]} (set FRAMEGEN_DEBUG=1 for details)",
                   err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
