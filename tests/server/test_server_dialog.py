"""Server › Start local server in the real app: start on a port, the URL to copy, a request
from the openai client shows in the live log, stop. The GUI thread never waits on it."""

from __future__ import annotations

import socket

import openai
from PySide6.QtGui import QGuiApplication


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_app_serves_its_loaded_model(qtbot, make_window) -> None:
    window = make_window()
    window.server_action.trigger()
    dialog = window.server_dialog()
    assert dialog is not None and dialog.isVisible()
    dialog.port.setValue(_free_port())
    dialog.start_server()
    assert dialog.status.text() == "Starting…"  # returned at once; uvicorn starts elsewhere
    qtbot.waitUntil(lambda: dialog.url.text().startswith("http://127.0.0.1:"), timeout=20_000)
    dialog.copy_url()
    assert QGuiApplication.clipboard().text() == dialog.url.text()
    client = openai.OpenAI(base_url=dialog.url.text(), api_key="none", max_retries=0)
    model = client.models.list().data[0].id
    reply = client.completions.create(model=model, prompt="Hello", max_tokens=3,
                                      temperature=0)
    assert reply.usage.completion_tokens == 3
    qtbot.waitUntil(lambda: "/v1/completions 200" in dialog.log_view.toPlainText(),
                    timeout=10_000)
    assert "→3 tok" in dialog.log_view.toPlainText()
    assert dialog.in_flight.text() == "0"
    dialog.stop_server()
    assert dialog.toggle.text() == "Start" and dialog.port.isEnabled()
