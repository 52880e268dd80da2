//! Which processes belong to which task, what they hold, and how to stop all of them.
//!
//! A task is its root process (leader of its own process group) plus every descendant.
//! Descendants are found each tick through `/proc/PID/task/*/children`. ramguard is a child
//! subreaper, so a grandchild whose parent exits (double fork, `setsid` daemons) is
//! reparented to ramguard instead of escaping; such a process is attributed to its task by
//! the `RAMGUARD_TASK_TOKEN` variable every task inherits in its environment, or by having
//! been seen in the task's tree before. Once seen, a pid stays with its task until it is gone.
//!
//! Memory of a tree is measured by [`super::measure`]: one figure, shared pages once, plus
//! the task's `/dev/shm` files.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ramguard_core::policy::TaskId;
use ramguard_core::Bytes;
use rustix::process::{kill_process, kill_process_group, Pid, Signal};

use super::measure::Meter;
use crate::probe::process::ProcReader;
use crate::probe::Root;

/// The environment variable that marks a task's processes, `<run nonce>:<task id>`.
pub const TOKEN_VAR: &str = "RAMGUARD_TASK_TOKEN";

/// The task token in a live process's environment (`<nonce>:<task>`), if it carries one.
pub fn token_of(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{TOKEN_VAR}=");
    env.split(|b| *b == 0).find_map(|var| {
        let value = var.strip_prefix(prefix.as_bytes())?;
        String::from_utf8(value.to_vec()).ok()
    })
}

pub use super::measure::TreeMemory;

#[derive(Debug)]
struct Member {
    root: u32,
    pids: BTreeSet<u32>,
    meter: Meter,
}

/// Every running task's processes.
#[derive(Debug)]
pub struct Trees {
    reader: ProcReader,
    nonce: String,
    self_pid: u32,
    tasks: HashMap<TaskId, Member>,
    owner: HashMap<u32, TaskId>,
}

impl Trees {
    pub fn new(nonce: String) -> Trees {
        Trees {
            reader: ProcReader::new(Root::host()),
            nonce,
            self_pid: std::process::id(),
            tasks: HashMap::new(),
            owner: HashMap::new(),
        }
    }

    /// The token value for a task's environment.
    pub fn token(&self, task: TaskId) -> String {
        format!("{}:{task}", self.nonce)
    }

    /// Registers a freshly spawned task root.
    pub fn add(&mut self, task: TaskId, root: u32) {
        self.owner.insert(root, task);
        self.tasks.insert(
            task,
            Member {
                root,
                pids: BTreeSet::from([root]),
                meter: Meter::default(),
            },
        );
    }

    /// The task whose root process this pid is.
    pub fn task_of_root(&self, pid: u32) -> Option<TaskId> {
        self.owner
            .get(&pid)
            .copied()
            .filter(|t| self.tasks.get(t).is_some_and(|m| m.root == pid))
    }

    /// Forgets a task (after its root was reaped and its leftovers killed).
    pub fn remove(&mut self, task: TaskId) {
        if let Some(m) = self.tasks.remove(&task) {
            for pid in m.pids {
                self.owner.remove(&pid);
            }
        }
    }

    /// Forgets a reaped pid that is not a task root (roots go with [`Trees::remove`]).
    pub fn forget_pid(&mut self, pid: u32) {
        let Some(&task) = self.owner.get(&pid) else {
            return;
        };
        match self.tasks.get_mut(&task) {
            Some(m) if m.root == pid => {}
            Some(m) => {
                m.pids.remove(&pid);
                self.owner.remove(&pid);
            }
            None => {
                self.owner.remove(&pid);
            }
        }
    }

    /// Finds new descendants of every task, including processes reparented to ramguard.
    pub fn discover(&mut self) {
        // Processes reparented to us (subreaper) that are not task roots: escapees.
        if let Ok(mine) = self.reader.children(self.self_pid) {
            for pid in mine {
                if self.owner.contains_key(&pid) {
                    continue;
                }
                if let Some(task) = self.task_from_environ(pid) {
                    self.owner.insert(pid, task);
                    if let Some(m) = self.tasks.get_mut(&task) {
                        m.pids.insert(pid);
                    }
                }
            }
        }
        let tasks: Vec<TaskId> = self.tasks.keys().copied().collect();
        for task in tasks {
            let starts: Vec<u32> = self.tasks[&task].pids.iter().copied().collect();
            for start in starts {
                for pid in self.reader.tree(start).unwrap_or_default() {
                    if let std::collections::hash_map::Entry::Vacant(e) = self.owner.entry(pid) {
                        e.insert(task);
                        if let Some(m) = self.tasks.get_mut(&task) {
                            m.pids.insert(pid);
                        }
                    }
                }
            }
        }
    }

    fn task_from_environ(&self, pid: u32) -> Option<TaskId> {
        token_of(pid)?
            .strip_prefix(&self.nonce)?
            .strip_prefix(':')?
            .parse()
            .ok()
    }

    /// Measures one task's tree, given the allocated size of its shm files; pids that have
    /// gone are dropped.
    pub fn measure(&mut self, task: TaskId, now: Duration, shm: Bytes) -> TreeMemory {
        let Some(m) = self.tasks.get_mut(&task) else {
            return TreeMemory::default();
        };
        let mut pids = Vec::with_capacity(m.pids.len());
        let mut statms = Vec::with_capacity(m.pids.len());
        let mut gone = Vec::new();
        for &pid in &m.pids {
            match self.reader.statm(pid) {
                Ok(Some(s)) => {
                    pids.push(pid);
                    statms.push(s);
                }
                _ => {
                    if pid != m.root {
                        gone.push(pid);
                    }
                }
            }
        }
        for pid in gone {
            m.pids.remove(&pid);
            self.owner.remove(&pid);
        }
        m.meter.update(&self.reader, &pids, &statms, shm, now)
    }

    /// The pids of a task's tree as last seen (its root first).
    pub fn pids(&self, task: TaskId) -> Vec<u32> {
        let Some(m) = self.tasks.get(&task) else {
            return Vec::new();
        };
        let mut out = vec![m.root];
        out.extend(m.pids.iter().copied().filter(|&p| p != m.root));
        out
    }

    /// The reader of per-process files.
    pub fn reader(&self) -> &ProcReader {
        &self.reader
    }

    /// Sends a signal to the task's process group and to every process of its tree,
    /// including escapees in other sessions. Returns how many processes were signalled.
    pub fn signal(&mut self, task: TaskId, signal: Signal) -> usize {
        self.discover();
        let Some(m) = self.tasks.get(&task) else {
            return 0;
        };
        let mut n = 0;
        if let Some(pg) = Pid::from_raw(m.root as i32) {
            let _ = kill_process_group(pg, signal);
        }
        for &pid in &m.pids {
            if let Some(p) = Pid::from_raw(pid as i32) {
                if kill_process(p, signal).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// How many processes of a task's tree are not its root (leftovers to kill).
    pub fn others(&self, task: TaskId) -> usize {
        self.tasks
            .get(&task)
            .map_or(0, |m| m.pids.iter().filter(|&&p| p != m.root).count())
    }

    /// All pids of every task, for a last-resort kill.
    pub fn all_pids(&self) -> Vec<u32> {
        self.owner.keys().copied().collect()
    }
}
