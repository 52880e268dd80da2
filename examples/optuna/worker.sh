#!/usr/bin/env bash
# Optuna's own multi-process example (worker mode, worker.py) under ramguard: four workers
# of one study, `--repeat 4 -j 4`, under the same tight budget as run.sh. `--stop-signal INT`
# is what keeps it honest: a worker the brake stops gets KeyboardInterrupt and Optuna marks
# its trial FAIL before the worker exits; ramguard then restarts the worker. The last line is
# one JSON object like run.sh's. Prefer run.sh's pattern (one trial per process): there
# ramguard sees each trial's parameters and learns its peak from them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
ramguard="${RAMGUARD:-ramguard}"
work="${WORK:-$here/work-workers}"
rm -rf "$work"
mkdir -p "$work"
summary="$("$ramguard" run --journal "$work/ramguard.db" --name optuna-workers --json \
  --progress plain --repeat 4 -j 4 --mem 560M --reserve 64M --estimate 120M --grace 5s \
  --stop-signal INT -- "$python" "$here/worker.py" --storage "$work/optuna-journal.log" \
  --complete "${COMPLETE:-16}" | tail -n 1 || true)"
# ramguard exits 1 when a worker failed for good: the summary line is still printed.
"$python" - "$work/optuna-journal.log" "$summary" <<'PY'
import json, sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
study = optuna.load_study(study_name="ramguard-workers",
                          storage=JournalStorage(JournalFileBackend(sys.argv[1])))
states = [t.state.name for t in study.get_trials(deepcopy=False)]
print(json.dumps({"requested": len(states), "complete": states.count("COMPLETE"),
                  "fail": states.count("FAIL"), "running": states.count("RUNNING"),
                  "brakes": json.loads(sys.argv[2])["braked"],
                  "pauses": json.loads(sys.argv[2])["pauses"]}))
PY
