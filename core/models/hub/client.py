"""One place that talks to huggingface_hub's API and turns its exceptions into Hearth's.

``HfApi`` is built per call from :class:`HubSettings` so ``HF_ENDPOINT`` / ``HF_TOKEN`` /
``HF_HUB_OFFLINE`` changes take effect without restarting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from core.models.hub.errors import (
    HubOfflineError,
    HubUnreachableError,
    RepoNotFoundError,
    hub_error_for_status,
)
from core.models.hub.settings import HubSettings


def require_online(settings: HubSettings, what: str) -> None:
    """Raise :class:`HubOfflineError` when offline mode forbids ``what``."""
    if settings.offline:
        raise HubOfflineError(
            f"Cannot {what}: offline mode is on (HF_HUB_OFFLINE=1); "
            f"unset it to use the network, or pick a model already on disk."
        )


def make_api(settings: HubSettings) -> HfApi:
    """An ``HfApi`` bound to the current endpoint and token."""
    return HfApi(endpoint=settings.endpoint, token=settings.token or False)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise huggingface_hub / httpx failures as one-sentence Hearth errors."""
    try:
        yield
    except GatedRepoError as err:
        raise hub_error_for_status(401, what) from err
    except (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError) as err:
        status = err.response.status_code if err.response is not None else 404
        if status in (401, 403):  # the Hub answers 401 for private repos too
            raise hub_error_for_status(status, what) from err
        raise RepoNotFoundError(f"{what} was not found on the hub; check the name.") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else 0
        raise hub_error_for_status(status, what) from err
    except OfflineModeIsEnabled as err:
        raise HubOfflineError(
            f"Cannot reach the hub for {what}: offline mode is on (HF_HUB_OFFLINE=1)."
        ) from err
    except httpx2.HTTPError as err:
        raise HubUnreachableError(
            f"Cannot reach the hub for {what} ({type(err).__name__}); check the network "
            f"or HF_ENDPOINT and try again."
        ) from err
