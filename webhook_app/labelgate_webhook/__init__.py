"""labelgate's Flask application (``create_app(config)``)."""

from labelgate_webhook.app import create_app

__all__ = ["create_app"]
