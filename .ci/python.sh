#!/usr/bin/env bash
# CI for ramguard in the Python ecosystem (issue 14), run by .ci/run after the tests:
#   1. build the wheel the way `pip install .` does (maturin from PyPI, `bindings = "bin"`),
#   2. install it into a fresh venv and check `ramguard --version` is that venv's binary,
#   3. pip-install optuna from PyPI and run examples/optuna/run.sh (one process per trial)
#      and worker.sh (Optuna's worker mode): 0 trials left RUNNING, and in run.sh ramguard
#      stepped in at least once (a pause or a brake: which lever it pulls depends on timing).
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

venv() {
  if ! "$python" -m venv "$1" 2>/dev/null; then
    # Debian splits venv out of python3.
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv "$1"
    else
      "$python" -m pip install -q virtualenv && "$python" -m virtualenv -q "$1"
    fi
  fi
  "$1/bin/python" -m pip install -q --upgrade pip
}

echo "== wheel (pip wheel . → maturin, bindings = bin)"
venv "$tmp/build"
"$tmp/build/bin/pip" wheel -q --no-deps -w "$tmp/dist" .
wheel="$(ls "$tmp"/dist/ramguard-*.whl)"
echo "built $(basename "$wheel")"

echo "== install into a fresh venv"
venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "$wheel"
want="ramguard $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
got="$("$tmp/venv/bin/ramguard" --version)"
[ "$got" = "$want" ] || { echo "ramguard --version said '$got', expected '$want'" >&2; exit 1; }
PATH="$tmp/venv/bin:$PATH"
[ "$(command -v ramguard)" = "$tmp/venv/bin/ramguard" ] || { echo "ramguard is not on the venv's PATH" >&2; exit 1; }
echo "$got from $tmp/venv/bin/ramguard"

echo "== optuna examples (optuna from PyPI)"
"$tmp/venv/bin/pip" install -q optuna
check() { # NAME LAST_JSON_LINE MIN_STEPS (pauses + brakes)
  "$tmp/venv/bin/python" - "$1" "$2" "$3" <<'PY'
import json, sys
name, line, min_steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = json.loads(line)
print(f"{name}: {line}")
assert set(s) == {"requested", "complete", "fail", "running", "brakes", "pauses"}, s
assert s["running"] == 0, f"{name}: {s['running']} trial(s) left RUNNING"
assert s["brakes"] + s["pauses"] >= min_steps, f"{name}: the budget never made ramguard pause or brake a trial"
assert s["complete"] >= 1 and s["complete"] + s["fail"] == s["requested"], s
PY
}
export PYTHON="$tmp/venv/bin/python" RAMGUARD="$tmp/venv/bin/ramguard"
WORK="$tmp/per-trial" examples/optuna/run.sh >"$tmp/run.out" 2>"$tmp/run.err" \
  || { cat "$tmp/run.err" >&2; exit 1; }
check "examples/optuna/run.sh" "$(tail -n 1 "$tmp/run.out")" 1 || { cat "$tmp/run.err" >&2; exit 1; }
WORK="$tmp/workers" examples/optuna/worker.sh >"$tmp/worker.out" 2>"$tmp/worker.err" \
  || { cat "$tmp/worker.err" >&2; exit 1; }
# Worker mode draws unseeded parameters (as Optuna's example does): a pause is likely, not
# certain, so only the RUNNING count is a hard check there.
check "examples/optuna/worker.sh" "$(tail -n 1 "$tmp/worker.out")" 0 || { cat "$tmp/worker.err" >&2; exit 1; }
