"""Which route a Label Studio pull takes: the ``ls_pull_route`` setting, ``--pull-route`` and
the per-path defaults (commands read the export, webhook re-scores the task pages)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.config import load
from labelgate.errors import SettingsError
from labelgate.queue.durable import Job
from labelgate_webhook.jobs import labelstudio_rescore


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``route`` each ``score_project`` call received (no server is contacted)."""
    seen: list[str] = []

    @contextmanager
    def fake_connect(*_a: Any, **_k: Any) -> Any:
        yield object()

    def fake_score(_source: Any, _project: int, **kw: Any) -> dict[str, Any]:
        seen.append(kw["route"])
        return {"annotators": {}, "tasks": 0}

    monkeypatch.setattr("labelgate_labelstudio.client.connect", fake_connect)
    monkeypatch.setattr("labelgate_labelstudio.pipeline.score_project", fake_score)
    for name in ("LABELGATE_CONFIG", "LABELGATE_LS_PULL_ROUTE"):
        monkeypatch.delenv(name, raising=False)
    return seen


def _job() -> Job:
    return Job(1, "labelstudio_rescore", "labelstudio", "project:7", {}, 0, 1)


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, "pages"), ("auto", "auto"), ("export", "export")]
)
def test_rescore_reads_pages_unless_configured(
    routes: list[str], setting: str | None, expected: str
) -> None:
    flags = {"ls_pull_route": setting}
    labelstudio_rescore(_job(), config=load(flags=flags))
    assert routes == [expected]


def test_setting_from_the_environment(routes: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELGATE_LS_PULL_ROUTE", "export")
    labelstudio_rescore(_job(), config=load())
    assert routes == ["export"]


def test_unknown_route_is_a_settings_error(tmp_path: Path) -> None:
    cfg = tmp_path / "labelgate.toml"
    cfg.write_text('[server]\nls_pull_route = "ftp"\n')
    with pytest.raises(SettingsError, match=r"ls_pull_route.*expected one of auto, export, pages"):
        load(cfg)


@pytest.mark.parametrize(
    ("args", "file_route", "expected"),
    [
        ([], None, "auto"),
        (["--pull-route", "pages"], None, "pages"),
        ([], "pages", "pages"),
        (["--pull-route", "export"], "pages", "export"),
    ],
)
def test_ls_score_route(
    routes: list[str],
    tmp_path: Path,
    args: list[str],
    file_route: str | None,
    expected: str,
) -> None:
    cfg = tmp_path / "labelgate.toml"
    cfg.write_text(f'[server]\nls_pull_route = "{file_route}"\n' if file_route else "")
    argv = ["ls", "score", "--project", "7", "--settings", str(cfg), "--quiet", *args]
    argv += [
        "--url",
        "http://127.0.0.1:9",
        "--api-key",
        "k",
        "--store",
        f"sqlite:///{tmp_path}/s.db",
    ]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert routes == [expected]


def test_ls_score_refuses_unknown_route(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["ls", "score", "--project", "7", "--pull-route", "ftp", "--url", "http://127.0.0.1:9"],
    )
    assert result.exit_code == 2
    assert "ftp" in result.output
