#!/usr/bin/env bash
# Runs the per-trial Optuna example end to end: 3 rounds of 8 trials, one process each,
# under a budget of 560 MiB that cannot hold four of the larger trials at once.
#
#   examples/optuna/run.sh            # ramguard and an optuna-capable python from PATH
#   RAMGUARD=target/release/ramguard PYTHON=.venv/bin/python examples/optuna/run.sh
#
# `--estimate 96M` is deliberately low, so that the first round starts four trials at once
# and ramguard has to pause or brake some (a user would leave it out: ramguard then starts one trial
# and learns). Later rounds admit by the peaks learned from `mem_mib`. `--task-mem 300M`
# fails the largest trials as over cap. The last line is one JSON object:
#   {"requested": N, "complete": C, "fail": F, "running": R, "brakes": B, "pauses": P}
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
work="${WORK:-$here/work}"
rm -rf "$work"
mkdir -p "$work"
exec "$python" "$here/optimize.py" --work "$work" --rounds "${ROUNDS:-3}" --per-round 8 -- \
  -j 4 --mem 560M --reserve 64M --estimate 96M --task-mem 280M --grace 2s
