"""framegen.errors: every kind is a FramegenError with the exit code the CLI uses."""

import pytest

from framegen import errors


@pytest.mark.parametrize("kind,code", [(errors.UsageError, 2), (errors.AudioError, 1), (errors.RunError, 1),
                                       (errors.SongTooShortError, 1), (errors.TrainingDiverged, 1),
                                       (errors.RunDamaged, 1)])
def test_exit_codes(kind, code):
    e = kind("what is wrong: what to do")
    assert isinstance(e, errors.FramegenError) and e.exit_code == code and str(e) == "what is wrong: what to do"


def test_interrupted_carries_the_signal_exit_code():
    assert errors.Interrupted("stopped").exit_code == 130
    assert errors.Interrupted("stopped", exit_code=143).exit_code == 143
