"""Shared CLI helpers: progress steps, quiet consoles, coloured rates and tables."""

import io

import pytest
from rich.console import Console

from labelgate.cli.progress import make_console, progress_steps, rate_text, summary_table


def terminal(buffer):
    return Console(file=buffer, force_terminal=True, width=100, color_system="truecolor")


def test_steps_show_descriptions_and_counts():
    buf = io.StringIO()
    with progress_steps(terminal(buf)) as steps:
        steps.callback("comparing annotator1 with the ground truth", 0, 4)
        steps._progress.refresh()
        first = buf.getvalue()
        assert "comparing annotator1" in first and "0/4" in first
        seen = list(steps.track(["a", "b", "c"], "reading annotations"))
        steps._progress.refresh()
        assert seen == ["a", "b", "c"] and "3/3" in buf.getvalue()


def test_quiet_console_prints_nothing():
    console = make_console(quiet=True)
    assert console.quiet and console.stderr
    with progress_steps(console) as steps:
        steps.callback("scoring", 1, 2)
        assert list(steps.track([1, 2], "pulling jobs")) == [1, 2]
        steps.finish()


@pytest.mark.parametrize(
    ("value", "text", "style"),
    [
        (0.95, "95.0%", "green"),
        (0.9, "90.0%", "green"),
        (0.8, "80.0%", "yellow"),
        (0.5, "50.0%", "red"),
        (None, "—", "dim"),
    ],
)
def test_rate_colours(value, text, style):
    t = rate_text(value)
    assert (t.plain, str(t.style)) == (text, style)


def test_summary_table_keeps_styles_and_aligns_numbers():
    table = summary_table("t", ("who", "accuracy"), [("a", rate_text(0.5)), ("b", 3)])
    assert [c.justify for c in table.columns] == ["left", "right"]
    buf = io.StringIO()
    terminal(buf).print(table)
    out = buf.getvalue()
    assert "50.0%" in out and "\x1b[" in out  # coloured
