"""Session-wide fixtures live in plug-in modules under tests/fixtures/ (on pythonpath)."""

pytest_plugins = [
    "labelstudio_server_plugin",
    "cvat_double_plugin",
    "services_plugin",
]
