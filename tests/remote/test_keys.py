"""API keys: in a keyring when there is one, else in a file only the user can read; the
endpoint list never holds a key; addresses are normalised and never carry credentials."""

from __future__ import annotations

import stat
from pathlib import Path

import keyring.backend
import pytest

from core.errors import ConfigError
from core.models.engines import EndpointStore, normalize_base_url
from core.secrets import SERVICE, KeyStore

KEY = "sk-secret-0123456789"


class _NeverChosen:
    """A ``priority`` that makes a backend not viable: ``keyring`` registers every backend
    class it sees, and must never pick this one for the rest of the suite by itself."""

    def __get__(self, obj: object, cls: type | None = None) -> float:
        raise RuntimeError("a test keyring, used only when passed explicitly")


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real ``keyring`` backend (the library's plug-in interface), kept in memory: what a
    desktop's Secret Service or Keychain does, without one on this machine."""

    priority = _NeverChosen()  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_this_machine_has_no_keyring_so_keys_go_to_an_owner_only_file(
        isolated_home: Path) -> None:
    keys = KeyStore()
    assert not keys.uses_keyring  # no Secret Service here: the fallback is what runs
    store = EndpointStore(keys)
    ep = store.add("127.0.0.1:8000", KEY, "box")
    assert ep.has_key and store.key(ep) == KEY
    secrets = isolated_home / "secrets.json"
    assert _mode(secrets) == 0o600
    assert "only you can read" in keys.where
    assert KEY not in (isolated_home / "engines.json").read_text()
    assert not list(isolated_home.glob("*.tmp"))


def test_a_widened_key_file_is_tightened_on_read(isolated_home: Path) -> None:
    keys = KeyStore(use_keyring=False)
    keys.set("e1", KEY)
    secrets = isolated_home / "secrets.json"
    secrets.chmod(0o644)
    assert keys.get("e1") == KEY
    assert _mode(secrets) == 0o600


def test_with_a_keyring_no_key_touches_the_disk(isolated_home: Path) -> None:
    ring = MemoryKeyring()
    store = EndpointStore(KeyStore(ring))
    ep = store.add("https://gpu-box.example:8443/v1/", KEY, "gpu-box")
    assert ring.items == {(SERVICE, ep.id): KEY}
    assert not (isolated_home / "secrets.json").exists()
    assert store.key(ep) == KEY
    for path in isolated_home.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    again = store.add("https://gpu-box.example:8443/v1", "", "gpu-box")  # key removed
    assert again.id == ep.id and not again.has_key and ring.items == {}
    store.remove(ep.id)
    assert store.endpoints() == []


@pytest.mark.parametrize(("typed", "base"), [
    ("localhost:8080", "http://localhost:8080/v1"),
    ("http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1"),
    ("https://api.example.com/openai/v1/", "https://api.example.com/openai/v1"),
    ("http://[::1]:8000", "http://[::1]:8000/v1"),
])
def test_addresses_are_normalised(typed: str, base: str) -> None:
    assert normalize_base_url(typed) == base


@pytest.mark.parametrize(("typed", "says"), [
    ("", "Enter the engine's address"),
    ("ftp://host/v1", "must start with http:// or https://"),
    ("http://user:sk-abc@host:8000/v1", "not in the address"),
    ("http://host:99999/v1", "not a number from 1 to 65535"),
])
def test_bad_addresses_get_one_clear_message(typed: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        normalize_base_url(typed)
    assert "sk-abc" not in str(err.value)
