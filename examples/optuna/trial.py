#!/usr/bin/env python3
"""One Optuna trial in one process, run by ramguard (see README.md beside this file).

The driver (optimize.py) asked the study for the trial and handed its parameters to ramguard,
which runs this script once per trial, starting it only when its predicted peak memory fits
(predicted from the parameters: a larger `mem_mib` has been seen to need more). This script
computes the objective and tells the study the value. If ramguard's brake stops it, ramguard
starts it again later with the same parameters and the same trial number; if ramguard gives
up on it, the driver tells the study the trial failed. Either way it never stays RUNNING.

It reads what ramguard tells every attempt (documented in the top-level README):
RAMGUARD_ATTEMPT, RAMGUARD_PREVIOUS_END, RAMGUARD_PREVIOUS_REASON and RAMGUARD_RESULT.
"""

import argparse
import json
import os
import sys
import time

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

CHUNK = 8 << 20  # 8 MiB


def objective(x: float, mem_mib: int) -> float:
    """A toy loss whose memory grows with `mem_mib`, like a model with a bigger batch."""
    held = []
    for _ in range(mem_mib * (1 << 20) // CHUNK):
        held.append(bytearray(CHUNK))  # zero-filled, so really resident
        time.sleep(0.04)
    time.sleep(1.5)  # "train" at the peak
    return (x - 2.0) ** 2 + ((mem_mib - 150) / 100.0) ** 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trial", type=int, required=True, help="the trial number the driver asked")
    p.add_argument("--x", type=float, required=True)
    p.add_argument("--mem-mib", type=int, required=True)
    p.add_argument("--storage", required=True, help="the study's journal file")
    p.add_argument("--study", default="ramguard-demo")
    a = p.parse_args()

    attempt = int(os.environ.get("RAMGUARD_ATTEMPT", "1"))
    previous = os.environ.get("RAMGUARD_PREVIOUS_END")
    if previous:
        # The parameters were not at fault after a brake: same trial, same parameters.
        print(
            f"trial {a.trial}, attempt {attempt}: the previous attempt ended {previous} "
            f"({os.environ.get('RAMGUARD_PREVIOUS_REASON', '')})",
            file=sys.stderr,
        )

    value = objective(a.x, a.mem_mib)

    storage = JournalStorage(JournalFileBackend(a.storage))
    study = optuna.load_study(study_name=a.study, storage=storage)
    study.tell(a.trial, value, skip_if_finished=True)

    result = os.environ.get("RAMGUARD_RESULT")
    if result:
        with open(result, "w") as f:
            json.dump({"trial": a.trial, "value": value, "attempt": attempt}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
