#!/usr/bin/env python3
"""Optuna's documented multi-process pattern ("worker mode"): every worker process runs
`study.optimize` on one shared study in a JournalStorage, until the study has enough
complete trials. Run it under ramguard with `--stop-signal INT` (worker.sh): a worker that
ramguard stops (brake, cap, age) gets KeyboardInterrupt, Optuna records the trial it was
running as FAIL, and ramguard starts the worker again, which carries on with the study.
Under the default SIGTERM, Python dies without a word and that trial stays RUNNING forever.
"""

import argparse
import os
import sys

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trial import objective  # noqa: E402  (the same toy objective as the per-trial example)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True, help="the study's journal file")
    p.add_argument("--complete", type=int, default=16, help="stop once this many trials are complete")
    a = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="ramguard-workers",
        storage=JournalStorage(JournalFileBackend(a.storage)),
        direction="minimize",
        load_if_exists=True,
    )

    def run(trial):
        x = trial.suggest_float("x", -5.0, 5.0)
        mem_mib = trial.suggest_int("mem_mib", 40, 240, step=8)
        return objective(x, mem_mib)

    # A worker restarted by ramguard must not start its own count again: stop on the
    # study's total of complete trials, not on this process's.
    study.optimize(
        run,
        n_trials=a.complete,
        callbacks=[MaxTrialsCallback(a.complete, states=(TrialState.COMPLETE,))],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
