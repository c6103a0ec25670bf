"""Errors of the model hub: each one a sentence the user can act on.

They derive from :class:`core.errors.HearthError`, so the CLI and the GUI show them without
knowing the hub; subclasses exist so a caller can react (offer a login for a gated repo,
offer to free space, offer to resume a kept partial download).
"""

from __future__ import annotations

from core.errors import HearthError


class HubError(HearthError):
    """Base of every error raised by :mod:`core.models.hub`."""


class HubOfflineError(HubError):
    """Offline mode (HF_HUB_OFFLINE) forbids the network operation asked for."""


class HubUnreachableError(HubError):
    """The hub could not be reached or kept failing (connection errors, 5xx) after retries."""


class RepoNotFoundError(HubError):
    """The repository, revision or file does not exist (HTTP 404)."""


class AccessDeniedError(HubError):
    """The repository is gated or private and the token (HF_TOKEN) does not grant access."""


class UnsafeFilenameError(HubError):
    """A repository file name would escape the cache folder (``..``, absolute path)."""


class DownloadCancelledError(HubError):
    """The user cancelled; the partial file is kept so the download can resume later."""


class DiskFullError(HubError):
    """Not enough free space for the download; the partial file is kept for a later resume."""


class VerificationError(HubError):
    """The downloaded bytes do not match the published sha256; the file was deleted."""


def hub_error_for_status(status: int, what: str) -> HubError:
    """The user-facing error for a final HTTP status from the hub."""
    if status in (401, 403):
        return AccessDeniedError(
            f"Access to {what} was refused (HTTP {status}): the repository is gated or private; "
            f"accept its licence on the Hub and set HF_TOKEN to a token that has access."
        )
    if status == 404:
        return RepoNotFoundError(f"{what} was not found on the hub (HTTP 404); check the name.")
    return HubUnreachableError(
        f"The hub kept failing for {what} (HTTP {status}); try again later."
    )
