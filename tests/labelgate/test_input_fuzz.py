"""Seeded mutation fuzzing of every reader through the CLI: never a traceback.

Each case copies a bundled example (CVAT XML images and a video made from it, the Label Studio
export, COCO, labelgate JSON), applies one to three random mutations (replace, delete or
duplicate an XML attribute, text or element; replace a JSON value with a type-confused, huge,
NaN or infinite one, delete a key, duplicate a list entry; truncate the file) and runs the
command in-process with exceptions propagating. Passing means: no exception, exit 0 or 2 (1
only from ``gate``), and every exit-2 message of a reading command names the file.

Bounded and deterministic (fixed seeds); a failure prints the seed, case number and mutations
so it can be replayed.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mutations import mutate_json, mutate_xml

from labelgate.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GT = EXAMPLES / "cvat" / "gt.xml"
POLICY = EXAMPLES / "gate.toml"
CASES_PER_FORMAT = 120
COMMAND_CASES = 40
# More rounds (other seeds) for a longer hunt: LABELGATE_FUZZ_ROUNDS=20 pytest -k fuzz
ROUNDS = int(os.environ.get("LABELGATE_FUZZ_ROUNDS", "1"))

VIDEO_TRACKS = """<track id="1" label="car" source="manual">
  <box frame="0" outside="0" occluded="0" keyframe="1" xtl="10" ytl="10" xbr="50" ybr="40"
       z_order="0" rotation="10"/>
  <box frame="5" outside="0" occluded="1" keyframe="1" xtl="20" ytl="10" xbr="60" ybr="40"
       z_order="1" rotation="350"><attribute name="color">red</attribute></box>
  <box frame="9" outside="1" occluded="0" keyframe="1" xtl="20" ytl="10" xbr="60" ybr="40"/>
</track>
<track id="2" label="road_sign" source="manual" group_id="3">
  <polygon frame="2" outside="0" occluded="0" keyframe="1" points="1,1;9,1;9,9;1,9"/>
  <polygon frame="6" outside="0" occluded="0" keyframe="1" points="3,1;19,1;9,19"/>
  <mask frame="8" outside="0" occluded="0" keyframe="1" rle="2, 4, 2" left="5" top="5"
        width="4" height="2"/>
</track>
</annotations>"""


def _video_xml(gt_xml: str) -> str:
    """gt.xml's meta (labels, frame range) with tracks instead of images."""
    head = gt_xml[: gt_xml.index("<image")]
    size = "<original_size><width>640</width><height>480</height></original_size></meta>"
    return head.replace("</meta>", size) + VIDEO_TRACKS


def _corpus(tmp: Path) -> dict[str, tuple[str, str]]:
    """Format → (file suffix, text of the example to mutate)."""
    from labelgate.adapters import read_any

    gt_xml = GT.read_text()
    tasks = json.loads((EXAMPLES / "labelstudio" / "export.json").read_text())
    lg = tmp / "lg.json"
    read_any(EXAMPLES / "coco" / "gt.json").save_json(lg)
    return {
        "cvat-gt": (".xml", gt_xml),
        "cvat-annotator": (".xml", (EXAMPLES / "cvat" / "annotator1.xml").read_text()),
        "cvat-video": (".xml", _video_xml(gt_xml)),
        # Six tasks keep a run short and still hold GT, three annotators and predictions.
        "labelstudio": (".json", json.dumps(tasks[:6])),
        "coco": (".json", (EXAMPLES / "coco" / "gt.json").read_text()),
        "labelgate": (".json", lg.read_text()),
    }


def _mutant(fmt: str, corpus: dict[str, tuple[str, str]], rng: random.Random, log: list[str]):
    suffix, text = corpus[fmt]
    if rng.random() < 0.08:
        cut = rng.randint(0, len(text))
        log.append(f"truncated at {cut}")
        return suffix, text[:cut]
    if suffix == ".xml":
        return suffix, mutate_xml(text, rng, log)
    return suffix, mutate_json(text, rng, log)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[str, str]]:
    return _corpus(tmp_path_factory.mktemp("corpus"))


def _run(runner: CliRunner, args: list[str], what: str) -> Any:
    try:
        return runner.invoke(main, args, catch_exceptions=False)
    except BaseException as exc:  # name the mutation that crashed, keep the traceback
        raise AssertionError(f"{what}: {' '.join(args[:1])} raised {exc!r}") from exc


def _check(res: Any, args: list[str], path: Path, allowed: set[int], what: str) -> None:
    assert res.exit_code in allowed, f"{what}: exit {res.exit_code}: {res.output[-2000:]}"
    if res.exit_code == 2 and args[0] in ("inspect", "compare"):
        assert path.name in res.stderr, f"{what}: message does not name the file: {res.stderr}"


@pytest.mark.filterwarnings("ignore::labelgate.errors.DataWarning")
@pytest.mark.parametrize(
    ("fmt", "seed"),
    [
        ("cvat-gt", 1),
        ("cvat-annotator", 2),
        ("cvat-video", 3),
        ("labelstudio", 4),
        ("coco", 5),
        ("labelgate", 6),
    ],
)
def test_mutated_files_never_crash_inspect_or_compare(tmp_path, corpus, fmt, seed):
    rng = random.Random(seed)
    runner = CliRunner()
    (tmp_path / "config.xml").write_text((EXAMPLES / "labelstudio" / "config.xml").read_text())
    cases = CASES_PER_FORMAT // (2 if fmt.startswith("cvat") else 1)
    for case in range(cases * ROUNDS):
        log: list[str] = []
        suffix, text = _mutant(fmt, corpus, rng, log)
        path = tmp_path / f"mutant{case}{suffix}"
        path.write_text(text)
        what = f"{fmt} seed {seed} case {case}: {log}"
        for args in (
            ["inspect", str(path), "--json"],
            ["compare", "--gt", str(path), "--ds", str(path), "--quiet"]
            + (
                ["--gt-annotator", "ground_truth", "--ds-annotator", "annotator1@example.com"]
                if fmt == "labelstudio"
                else []
            ),
        ):
            _check(_run(runner, args, what), args, path, {0, 2}, what)
        path.unlink()


@pytest.mark.filterwarnings("ignore::labelgate.errors.DataWarning")
def test_mutated_files_never_crash_the_batch_commands(tmp_path, corpus):
    rng = random.Random(7)
    runner = CliRunner()
    (tmp_path / "config.xml").write_text((EXAMPLES / "labelstudio" / "config.xml").read_text())
    out = tmp_path / "out.json"
    options = {
        "report": ["--no-history", "--quiet", "--json", str(out), "--policy", str(POLICY)],
        "agree": ["--quiet", "--bootstrap", "10"],
        "merge": ["--out", str(out), "--quiet"],
        "gate": ["--policy", str(POLICY), "--quiet"],
        "scorecards": ["--no-store", "--quiet"],
    }
    for case in range(COMMAND_CASES * ROUNDS):
        fmt = rng.choice(["cvat-annotator", "labelstudio", "coco"])
        log: list[str] = []
        suffix, text = _mutant(fmt, corpus, rng, log)
        path = tmp_path / f"mutant{case}{suffix}"
        path.write_text(text)
        command = rng.choice(sorted(options))
        if fmt == "labelstudio":
            source = [str(path)]
        else:
            source = ["--gt", str(GT if fmt.startswith("cvat") else path), "--ds", str(path)]
            source += ["--ds", str(EXAMPLES / "cvat" / "annotator2.xml")] * fmt.startswith("cvat")
        args = [command, *source, *options[command]]
        what = f"{fmt} seed 7 case {case}: {log}"
        allowed = {0, 1, 2} if command == "gate" else {0, 2}
        _check(_run(runner, args, what), args, path, allowed, what)
        path.unlink()
