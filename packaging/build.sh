#!/usr/bin/env bash
# Build Hearth's one-folder bundle with PyInstaller for this platform (`make package`).
# Output: dist/hearth/ (Linux, Windows) or dist/Hearth.app (macOS). Takes a few minutes.
# A CUDA bundle: install a CUDA build of llama-cpp-python first (packaging/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
case "$(uname -s)" in
  Linux) spec=hearth-linux.spec ;;
  Darwin) spec=hearth-macos.spec ;;
  MINGW*|MSYS*|CYGWIN*) spec=hearth-windows.spec; PY="${PY:-.venv/Scripts/python}" ;;
  *) echo "build.sh: no spec for $(uname -s)" >&2; exit 1 ;;
esac
"$PY" -m PyInstaller --version >/dev/null 2>&1 || {
  echo "build.sh: PyInstaller is missing; install the dev extras: pip install -e '.[dev]'" >&2
  exit 1
}
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller "packaging/$spec"
echo "Built: $(du -sh dist/hearth | cut -f1) in dist/hearth"
