"""Every registered command and adapter loads, has --help, and is named in the README."""

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate import __version__
from labelgate.adapters import discover
from labelgate.cli import main
from labelgate.engine import QualitySettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SEMANTICS = (Path(__file__).resolve().parents[2] / "docs" / "semantics.md").read_text()
COMMANDS = sorted(ep.name for ep in entry_points(group="labelgate.commands"))


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_loads_and_has_help(name):
    ep = next(ep for ep in entry_points(group="labelgate.commands") if ep.name == name)
    ep.load()  # raises if the module is missing
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    assert f"labelgate {name}" in README


def test_adapters_are_registered_and_documented():
    adapters = discover()
    assert {"cvat", "labelstudio"} <= set(adapters)
    for name in adapters:
        assert f"labelgate.adapters:{name}" in README


@pytest.mark.parametrize("field", QualitySettings.field_names())
def test_every_setting_is_documented(field):
    assert f"`{field}`" in SEMANTICS


def test_inspect_json(tmp_path):
    path = Path(__file__).resolve().parents[2] / "examples" / "cvat" / "annotator1.xml"
    res = CliRunner().invoke(main, ["inspect", str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert '"items": 30' in res.output


def test_unreadable_file_exits_2(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    res = CliRunner().invoke(main, ["inspect", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output
