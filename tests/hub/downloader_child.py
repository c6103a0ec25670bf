"""A downloader process for the SIGKILL tests: ``python -m tests.hub.downloader_child REPO FILE``.

Settings come from the environment (HF_ENDPOINT, HF_HUB_CACHE), as for the app.
"""

from __future__ import annotations

import sys

from core.models.hub.download import Downloader

if __name__ == "__main__":
    path = Downloader(backoff=0.01, read_timeout=60).download(sys.argv[1], sys.argv[2])
    print(path)
