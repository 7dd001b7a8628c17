"""Session-wide fixtures live in plug-in modules under tests/fixtures/ (on pythonpath)."""

import os
import tempfile

# Nothing a test runs may write into the user's real labelgate folder.
os.environ["LABELGATE_HOME"] = tempfile.mkdtemp(prefix="labelgate-test-home-")
os.environ.pop("LABELGATE_STORE_URL", None)

pytest_plugins = [
    "services_plugin",  # first: the other plug-ins use its helpers
    "labelstudio_server_plugin",
    "cvat_double_plugin",
]
