"""Smoke test that the three source roots import from one editable install."""

import importlib


def test_all_source_roots_importable():
    for name in ("labelgate", "labelgate_cvat", "labelgate_labelstudio", "labelgate_webhook"):
        assert importlib.import_module(name).__name__ == name
