"""Indexes a folder in its own process, slowly, so a test can kill it mid-way.

``python -m tests.documents.index_child STORE FOLDER MODEL``: the progress callback waits
a little before each file (the files themselves are indexed for real), and prints how many
it has started, so the parent knows the run is under way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from core.chat.documents import DocumentStore, Indexer, IndexProgress
from core.chat.documents.tokens import ModelTokenizer


def main(store_path: str, folder: str, model: str) -> None:
    store = DocumentStore(Path(store_path))
    collection = store.find_collection("killed") or store.create_collection("killed")
    store.add_roots(collection, [Path(folder)])

    def slow(p: IndexProgress) -> None:
        if p.phase == "index":
            print(p.done, flush=True)
            time.sleep(0.03)

    Indexer(store, ModelTokenizer.open(Path(model)), progress=slow).index("killed")
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
