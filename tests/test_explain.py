"""framegen.explain: the evaluate report with one line per metric and the song's references beside, the
transitions line, and the advice after a flagged free-running MSE result."""

import dataclasses

from framegen.explain import MSE_ADVICE, format_report, next_step, transition_text
from tests.test_evaluate import evaluated


def test_format_report_has_one_line_per_metric():
    text = format_report(evaluated("repitched_up_1pct"))
    lines = text.splitlines()
    assert lines[0] == "flags: none"
    for name in ("audible_ratio", "loudness_ratio", "noise_likeness", "frechet_ratio", "novelty", "loop_period_s"):
        assert sum(line.strip().startswith(name + ":") for line in lines) == 1
    assert "flags: stuck" in format_report(evaluated("tiled_frame"))
    # The song's references stand beside the clip's rhythm values.
    assert any(line.strip().startswith("rhythm_similarity:") and "(real " in line for line in lines)
    assert any(line.strip().startswith("continuity:") and "(song " in line for line in lines)
    assert any(line.strip().startswith("transition_jumps:") and "(real " in line and ", shuffled " in line
               for line in lines)
    assert not any(line.strip().startswith(("transition_real:", "transition_shuffled:")) for line in lines)


def test_transition_text_shows_the_song_references_and_a_dash_for_none():
    ev = dataclasses.replace(evaluated("repitched_up_1pct"), transition=0.5, transition_real=0.75,
                             transition_jumps=None, transition_shuffled=0.1, jump_rate=0.25, change_ratio=0.9)
    assert transition_text(ev) == ("follows the song 0.50 (real 0.75), at its jumps - (shuffled beats 0.10), "
                                   "0.25 jumps per beat; change ratio 0.90")


def test_a_collapsed_or_far_free_running_mse_result_is_told_what_to_try_next():
    def advice(flags, output="mse", select="off"):
        return next_step(flags, output=output, song="/x/song.wav", select=select)

    for flag in ("silent", "stuck", "static", "far_from_song"):
        assert advice((flag, "no_pulse")) == MSE_ADVICE.format(song="/x/song.wav"), flag
    assert "--select model" in advice(("static",)) and "--output vq" in advice(("static",))
    assert advice(("no_pulse",)) is None and advice(()) is None
    assert advice(("stuck",), output="vq") is None and advice(("stuck",), select="model") is None  # real frames
