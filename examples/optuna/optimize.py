#!/usr/bin/env python3
"""Drive an Optuna study through ramguard, one process per trial (see README.md).

Each round: ask the study for K trials (their parameters are fixed here, in the driver),
append one JSON line per trial to a tasks file, and run `ramguard run --tasks` on it. The
journal makes every round run only the new lines. After the round, every trial that
ramguard could not finish (over its cap, failed, or braked too often) is told FAIL, with
ramguard's reason as a user attribute: no trial stays RUNNING. The last line printed is
one JSON object: {"requested", "complete", "fail", "running", "brakes", "pauses"}.
"""

import argparse
import json
import os
import subprocess
import sys

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=os.path.join(HERE, "work"), help="study and journal directory")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=8)
    p.add_argument("--ramguard", default=os.environ.get("RAMGUARD", "ramguard"))
    p.add_argument("ramguard_args", nargs="*", help="extra `ramguard run` options (after --)")
    a = p.parse_args()

    os.makedirs(a.work, exist_ok=True)
    storage_file = os.path.join(a.work, "optuna-journal.log")
    journal = os.path.join(a.work, "ramguard.db")
    tasks_file = os.path.join(a.work, "trials.jsonl")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="ramguard-demo",
        storage=JournalStorage(JournalFileBackend(storage_file)),
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=14, n_startup_trials=8),
        load_if_exists=True,
    )

    brakes = pauses = 0
    asked = {}
    for _ in range(a.rounds):
        with open(tasks_file, "a") as f:
            for _ in range(a.per_round):
                t = study.ask()
                params = {
                    "trial": t.number,
                    "x": round(t.suggest_float("x", -5.0, 5.0), 6),
                    "mem_mib": t.suggest_int("mem_mib", 40, 240, step=8),
                }
                asked[t.number] = t
                f.write(json.dumps(params) + "\n")
        cmd = [
            a.ramguard, "run", "--name", "optuna-demo", "--journal", journal,
            "--tasks", tasks_file, "--skip-failed", "--json", "--progress", "plain",
            *a.ramguard_args,
            "--", sys.executable, os.path.join(HERE, "trial.py"),
            "--trial", "{trial}", "--x", "{x}", "--mem-mib", "{mem_mib}",
            "--storage", storage_file,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            stdout, _ = proc.communicate()
        except KeyboardInterrupt:
            # Ctrl-C reached ramguard too: it stops the trials, journals them as
            # interrupted and exits 130. Wait for that, then tidy up below.
            stdout, _ = proc.communicate()
        run = subprocess.CompletedProcess(cmd, proc.returncode, stdout)
        if run.returncode == 130:
            # Interrupted (Ctrl-C): ramguard stopped the running trials and journaled them
            # as interrupted; tell Optuna too, so that no trial is left RUNNING.
            fail_what_ramguard_gave_up_on(study, asked, a.ramguard, journal, interrupted=True)
            print("interrupted: unfinished trials told FAIL", file=sys.stderr)
            return 130
        if run.returncode not in (0, 1):
            print(f"ramguard run failed with exit code {run.returncode}", file=sys.stderr)
            return run.returncode
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        brakes += summary.get("braked", 0)
        pauses += summary.get("pauses", 0)
        fail_what_ramguard_gave_up_on(study, asked, a.ramguard, journal)

    counts = {s: 0 for s in ("COMPLETE", "FAIL", "RUNNING")}
    for t in study.get_trials(deepcopy=False):
        if t.state.name in counts:
            counts[t.state.name] += 1
    best = study.best_trial if counts["COMPLETE"] else None
    if best:
        print(f"best value {best.value:.4f} with {best.params}", file=sys.stderr)
    print(json.dumps({
        "requested": len(asked),
        "complete": counts["COMPLETE"],
        "fail": counts["FAIL"],
        "running": counts["RUNNING"],
        "brakes": brakes,
        "pauses": pauses,
    }))
    return 0


def fail_what_ramguard_gave_up_on(study, asked, ramguard, journal, interrupted=False):
    """Tells FAIL for every asked trial still RUNNING whose ramguard task is over (after an
    interrupted run: every asked trial still RUNNING)."""
    out = subprocess.run(
        [ramguard, "results", "optuna-demo", "--journal", journal, "--format", "json"],
        stdout=subprocess.PIPE, text=True, check=True,
    )
    ended = {}
    for task in json.loads(out.stdout)["tasks"]:
        if task["state"] in ("done", "failed"):
            ended[int(task["params"]["trial"])] = task
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for number, trial in asked.items():
        task = ended.get(number)
        if states.get(number) != TrialState.RUNNING or (task is None and not interrupted):
            continue
        task = task or {"exit": "interrupted", "reason": "the run was interrupted"}
        trial.set_user_attr("ramguard_exit", task.get("exit"))
        trial.set_user_attr("ramguard_reason", task.get("reason"))
        study.tell(trial, state=TrialState.FAIL)


if __name__ == "__main__":
    sys.exit(main())
