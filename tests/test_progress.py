"""Progress lines when output is piped: the first at once, then at most one every few
seconds, and a last one; flushed."""

import io
import time

from jaxsim import progress


def test_piped_progress_lines_are_throttled_and_final():
    stream = io.StringIO()
    shown = progress.Progress("baseline", total=10, unit="runs", bar=False, stream=stream, every=0.2)
    for done in range(1, 11):
        shown.update(done, loss=1.0 / done)
        time.sleep(0.05)
    seconds = shown.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("  baseline: 0/10 runs (0%)")
    assert lines[-1].startswith("  baseline: 10/10 runs (100%), loss 0.1,") and lines[-1].endswith(" done")
    assert 3 <= len(lines) <= 6, lines  # 0.5 s of updates at one line per 0.2 s, plus first and last
    assert seconds >= 0.5


def test_stage_line_is_flushed_at_once():
    stream = io.StringIO()
    progress.stage("compiling the ensemble program", stream=stream)
    assert stream.getvalue() == "compiling the ensemble program ...\n"


def test_heartbeat_speaks_only_when_the_program_is_silent(capsys):
    with progress.Heartbeat(first=0.3, every=0.3):
        progress.now("compiling the run")
        time.sleep(1.0)  # silent: beats
        for _ in range(8):  # speaking every 0.1 s: no beats
            print("step")
            time.sleep(0.1)
    lines = capsys.readouterr().out.splitlines()
    beats = [line for line in lines if line.startswith("  ... compiling the run: ")]
    assert 2 <= len(beats) <= 3, lines
    first_step = lines.index("step")
    assert all(lines.index(beat) < first_step for beat in beats)  # none while steps were printed
