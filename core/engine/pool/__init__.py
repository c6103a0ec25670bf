"""Several models at once: an engine pool with memory-aware loading, keep-alive, eviction
and fair turns (see :mod:`core.engine.pool.pool`)."""

from core.engine.pool.budget import Cost, FreeMemoryBudget, MemoryBudget, predict_cost
from core.engine.pool.catalog import Catalog, CatalogModel, UnknownModelError, id_from_file
from core.engine.pool.keys import PoolKey, covers, key_of
from core.engine.pool.pool import DEFAULT_KEEP_ALIVE_S, EnginePool, PoolEvent
from core.engine.pool.slots import ModelStatus, Waiting
from core.engine.pool.view import PoolBackend

__all__ = [
    "DEFAULT_KEEP_ALIVE_S",
    "Catalog",
    "CatalogModel",
    "Cost",
    "EnginePool",
    "FreeMemoryBudget",
    "MemoryBudget",
    "ModelStatus",
    "PoolBackend",
    "PoolEvent",
    "PoolKey",
    "UnknownModelError",
    "Waiting",
    "covers",
    "id_from_file",
    "key_of",
    "predict_cost",
]
