# Hearth: the two commands are `make run` and `make test`; `make bench` measures.
# Set-up is automatic: a .venv is created and the project installed into it whenever
# pyproject.toml is newer than the last install.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hearth-installed
SYSDEPS := $(VENV)/.system-deps

.PHONY: setup run test bench lint clean

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

setup: $(STAMP) $(SYSDEPS)

run: setup
	$(VENV)/bin/hearth

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check core app tests bench
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .cache build *.egg-info
