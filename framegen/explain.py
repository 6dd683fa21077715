"""An Evaluation in words for people: the report `framegen evaluate` prints (`format_report`), the line on a clip's
transitions that generate and the plots show, and what to try after a flagged result (`next_step`).
"""

from __future__ import annotations

from framegen.evaluate import METRICS, Evaluation

BESIDE = {"pulse": (("pulse_real", "real"),), "tempo": (("tempo_song", "song"),),
          "rhythm_similarity": (("rhythm_similarity_real", "real"),), "continuity": (("continuity_song", "song"),),
          "transition": (("transition_real", "real"),),
          "transition_jumps": (("transition_real", "real"), ("transition_shuffled", "shuffled")),
          "jump_rate": (("jump_rate_real", "real"),), "change": (("change_song", "song"),)}
"""format_report prints these song references beside the clip's value, not on lines of their own."""


def format_report(ev: Evaluation) -> str:
    """Human-readable multi-line report: the flags, the rates, then one metric per line with its METRICS summary;
    the song's references of pulse, tempo, rhythm, continuity, transitions and change beside the clip's value
    (BESIDE)."""
    lines = [f"flags: {', '.join(ev.flags) if ev.flags else 'none'}"]
    rate = f"sample rate: {ev.sample_rate} Hz"
    if ev.rate_mismatch:
        rate += f" (song resampled from {ev.reference_rate} Hz)"
    lines.append(rate)
    shown_beside = {ref for refs in BESIDE.values() for ref, _ in refs}
    for name, (why, _) in METRICS.items():
        if name in shown_beside or name in ("sample_rate", "reference_rate", "rate_mismatch", "flags"):
            continue
        text = _text(getattr(ev, name))
        if name in BESIDE:
            text += " (" + ", ".join(f"{label} {_text(getattr(ev, ref))}" for ref, label in BESIDE[name]) + ")"
        lines.append(f"{name:>24}: {text:<10} {why}")
    return "\n".join(lines)


def _text(value) -> str:
    return "None" if value is None else ("yes" if value else "no") if isinstance(value, bool) else f"{value:.4g}"


ADVICE_FLAGS = ("silent", "stuck", "static", "far_from_song")
"""The flags of an MSE run's output that `next_step` answers: it collapsed (silence, a loop, a drone) or does not
sound like the song."""

MSE_ADVICE = ("an MSE model fed its own output settles into silence, a loop or a drone on real songs; generate "
              "with unit selection instead (`--select model`, the default: real stretches of the song chosen by "
              "the model), or train the VQ mode: framegen train {song} --output vq")
"""What `framegen generate` prints after such a result of free-running feedback ({song}: the run's song)."""


def next_step(flags, *, output: str, song: str, select: str = "off") -> str | None:
    """What to try next after a run's output raised `flags`: MSE_ADVICE for an MSE run (`output` "mse") that fed
    its predictions back (`select` "off") flagged with any of ADVICE_FLAGS, else None (the others play real
    frames already)."""
    if output == "mse" and select == "off" and set(ADVICE_FLAGS) & set(flags):
        return MSE_ADVICE.format(song=song)
    return None


def transition_text(ev: Evaluation) -> str:
    """One line on where a clip goes from beat to beat, its song's references beside: for `framegen generate`."""
    def f(value):
        return "-" if value is None else f"{value:.2f}"

    return (f"follows the song {f(ev.transition)} (real {f(ev.transition_real)}), at its jumps "
            f"{f(ev.transition_jumps)} (shuffled beats {f(ev.transition_shuffled)}), {f(ev.jump_rate)} jumps per "
            f"beat; change ratio {ev.change_ratio:.2f}" + (
                "" if ev.jump_score_exact is None else
                f"; exactly from its path: jumps {f(ev.jump_score_exact)}, {f(ev.jumps_exact)} per beat, longest "
                f"copy {f(ev.longest_copy_s)} s"))
