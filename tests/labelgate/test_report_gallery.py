"""`labelgate report --images DIR`: a gallery of the worst frames in the one-file HTML report."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from labelgate.cli import main
from labelgate.reporting.html import GALLERY_FRAMES

EX = Path(__file__).resolve().parents[2] / "examples"
SVG = "{http://www.w3.org/2000/svg}"


def _run(tmp_path, *extra):
    args = ["report", "--gt", str(EX / "cvat/gt.xml"), "--no-history", "--quiet"]
    for i in (1, 2, 3):
        args += ["--ds", str(EX / f"cvat/annotator{i}.xml")]
    args += ["--html", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"), *extra]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return (tmp_path / "r.html").read_text(), json.loads((tmp_path / "r.json").read_text())


def test_gallery_of_worst_frames_with_embedded_images(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    names = [img.get("name") for img in ET.parse(EX / "cvat/gt.xml").getroot().iter("image")]
    for name in names:
        Image.new("RGB", (640, 480), (200, 210, 220)).save(images / name)
    page, bundle = _run(tmp_path, "--images", str(images))
    # Hand ranking: per (annotator, frame) the errors, then all conflicts with shapes.
    errors, total = Counter(), Counter()
    for c in bundle["conflicts"]:
        geo = c["geometry"]
        if geo["ds"] or geo["gt"]:
            key = (c["annotator"], c["frame"])
            total[key] += 1
            errors[key] += c["severity"] == "error"
    ranked = sorted(total, key=lambda k: (-errors[k], -total[k], k[1], k[0]))
    figures = re.findall(r"<figure class='frame'.*?</figure>", page, re.S)
    assert len(figures) == min(GALLERY_FRAMES, len(ranked))
    first = ET.fromstring(re.search(r"<svg.*?</svg>", figures[0], re.S).group(0))
    worst = ranked[0]
    assert f"data-frame='{worst[1]}'" in figures[0] and worst[0] in figures[0]
    drawn = [
        g
        for c in bundle["conflicts"]
        if (c["annotator"], c["frame"]) == worst
        for g in (c["geometry"]["ds"], c["geometry"]["gt"])
        if g and g["kind"] != "tag"
    ]
    assert len(first.findall(f"{SVG}*[@data-side]")) == len(drawn)
    assert first.get("width") == "420" and first.get("height") == "315"  # 640x480 at 420 px
    href = first.find(f"{SVG}image").get("href")
    assert href.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))) as img:
        assert img.size == (640, 480)
    # Still one self-contained file: no URL but data: ones in the gallery.
    assert not re.search(r"href='(?!data:)", "".join(figures))


def test_no_gallery_without_images(tmp_path):
    page, _ = _run(tmp_path)
    assert "sec-gallery" not in page and "<figure" not in page
