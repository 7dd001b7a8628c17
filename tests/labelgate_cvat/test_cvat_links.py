"""Conflict links of live CVAT runs: the server URL is recorded without its credentials."""

from types import SimpleNamespace

import pytest

from labelgate_cvat.pipeline import _public_host


def _source(host):
    return SimpleNamespace(api=SimpleNamespace(configuration=SimpleNamespace(host=host)))


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("https://cvat.example.com", "https://cvat.example.com"),
        ("https://user:pw@cvat.example.com:8443/", "https://cvat.example.com:8443"),
        ("http://127.0.0.1:8080/cvat/", "http://127.0.0.1:8080/cvat"),
    ],
)
def test_public_host_drops_credentials(host, public):
    assert _public_host(_source(host)) == public


def test_no_host_no_links():
    assert _public_host(SimpleNamespace()) is None
    assert _public_host(_source("")) is None
