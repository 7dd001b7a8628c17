"""The labelgate exception tree.

Every error labelgate raises on purpose derives from :class:`LabelgateError`. Each subclass
also derives from the builtin a caller would naturally catch, so ``except ValueError`` keeps
working for code that does not know labelgate. Errors that can reach the webhook receiver carry
an HTTP status.

::

    LabelgateError (Exception)                  status 500
    ├── ValidationError (ValueError)             status 400  bad values in the common model
    │   ├── SchemaError                                       unknown label / attribute / control
    │   └── SettingsError                                     out-of-range or unknown setting
    ├── FormatError (ValueError)                 status 400  a file or payload that cannot be read
    ├── ConnectionFailed (ConnectionError)       status 502  server down, timeout, 5xx after retries
    │   └── StoreUnavailable                     status 503  local store/queue unreadable or unwritable
    ├── AuthenticationFailed (PermissionError)   status 401  wrong token or credentials (401/403)
    ├── NotFound (LookupError)                   status 404  project / task / job / report missing
    ├── SignatureError (PermissionError)         status 401  webhook signature missing or wrong
    ├── PayloadTooLarge (ValueError)             status 413
    ├── MissingDependency (ImportError)          status 500  optional extra not installed
    └── GateFailed (Exception)                   status 422  release gate said no

Non-fatal data problems are not exceptions: they are :class:`DataWarning` warnings and entries in
a report's ``data_errors``.
"""

from __future__ import annotations


class LabelgateError(Exception):
    """Base class of every error labelgate raises on purpose."""

    status: int = 500


class ValidationError(LabelgateError, ValueError):
    """A value in the common model is malformed (wrong dtype, length, NaN, unsorted ...)."""

    status = 400


class SchemaError(ValidationError):
    """A label, attribute or control tag that the label schema does not define."""


class SettingsError(ValidationError):
    """A quality setting that is unknown or out of its allowed range."""


class FormatError(LabelgateError, ValueError):
    """A file or API payload that cannot be read.

    The message names the file (or payload), the element/task and the problem.
    """

    status = 400


class ConnectionFailed(LabelgateError, ConnectionError):
    """The remote server could not be reached or kept failing after retries."""

    status = 502


class StoreUnavailable(ConnectionFailed):
    """The report store (or the queue) cannot be read or written: unreachable database, full or
    read-only disk. The CLI exits 3; the webhook app answers 503 so senders retry."""

    status = 503


class AuthenticationFailed(LabelgateError, PermissionError):
    """The remote server refused the credentials (HTTP 401/403)."""

    status = 401


class NotFound(LabelgateError, LookupError):
    """A project, task, job, item or report does not exist."""

    status = 404


class SignatureError(LabelgateError, PermissionError):
    """A webhook request whose signature or shared secret is missing or wrong."""

    status = 401


class PayloadTooLarge(LabelgateError, ValueError):
    """A request body over the configured limit."""

    status = 413


class MissingDependency(LabelgateError, ImportError):
    """An optional dependency needed for this feature is not installed."""

    status = 500


class GateFailed(LabelgateError):
    """The release gate rejected a batch."""

    status = 422


class DataWarning(UserWarning):
    """A non-fatal data problem: the annotation is skipped and listed in ``data_errors``."""
