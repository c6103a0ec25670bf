"""Hearth's local OpenAI-compatible server: FastAPI over any :class:`EngineBackend`.

``create_server(router, config)`` builds the ASGI app with its batch runner and metrics;
:mod:`server.run` runs it under uvicorn (in a thread for the app and the tests, in the
foreground for ``hearth-cli serve``). The server sits below the front ends that launch it
(``cli`` and ``app``) and above ``core``: it is a library, not a front end of its own.
"""

from server.app import HearthServer, create_server
from server.config import DEFAULT_PORT, ServerConfig
from server.models import ModelRouter

__all__ = ["DEFAULT_PORT", "HearthServer", "ModelRouter", "ServerConfig", "create_server"]
