//! Which processes belong to which task, what they hold, and how to stop all of them.
//!
//! A task is its root process (leader of its own process group) plus every descendant.
//! Membership never depends on anything the task could drop (its environment, its session,
//! its process group): every root is started as the *subreaper of its own tree*
//! (`PR_SET_CHILD_SUBREAPER`, set in `spawn.rs`), so an orphan anywhere below it — a double
//! fork, a `setsid` daemon, a child started with an empty environment — is reparented to the
//! root and stays in the tree. Descendants are found by ancestry through
//! `/proc/PID/task/*/children`, and a pid stays with the task that owned it when first seen
//! until it is gone.
//!
//! Only when a root itself exits do its live descendants leave its tree: the kernel hands
//! them to the next subreaper up, ramguard. [`Trees::adopt_orphans`], called as the root is
//! reaped, gives every unclaimed child of ramguard to that task so they are killed with it;
//! a child of ramguard that no task can claim later (not a root, not the sentinel, not in
//! ramguard's own process group like any helper it starts) is a leftover of a task already
//! gone and [`Trees::discover`] kills it at once. ramguard therefore never waits on a
//! process it could kill.
//!
//! The price: a task's root also inherits its orphaned descendants as children (as under
//! `tini`), so a root that waits for "any child" may reap one of them.
//!
//! Killing a tree ([`Trees::kill_tree`]) first freezes it (SIGSTOP, repeated until a walk
//! finds no new process, so nothing forks away while it is being killed), then SIGKILLs
//! every member and the root's process group.
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

/// The environment variable that marks a task's processes, `<run nonce>:<task id>`. A hint
/// only (a process can drop it); ancestry is what attributes a process to its task.
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
    /// When its CPU time was last read, and what it was.
    cpu: Option<(Duration, Duration)>,
}

/// How often a tree's CPU time is read at most: what tells a sleeping task from a working
/// one needs half a second of it (`policy::park`), not every tick's.
const CPU_EVERY: Duration = Duration::from_millis(50);

/// Every running task's processes.
#[derive(Debug)]
pub struct Trees {
    reader: ProcReader,
    nonce: String,
    self_pid: u32,
    tasks: HashMap<TaskId, Member>,
    owner: HashMap<u32, TaskId>,
    /// Children of ramguard that are not tasks' processes (the sentinel).
    spared: BTreeSet<u32>,
}

impl Trees {
    pub fn new(nonce: String) -> Trees {
        Trees {
            reader: ProcReader::new(Root::host()),
            nonce,
            self_pid: std::process::id(),
            tasks: HashMap::new(),
            owner: HashMap::new(),
            spared: BTreeSet::new(),
        }
    }

    /// Marks a child of ramguard that is not part of any task (never killed as a stray).
    pub fn spare(&mut self, pid: u32) {
        self.spared.insert(pid);
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
                cpu: None,
            },
        );
    }

    /// Every running task's root pid.
    pub fn roots(&self) -> Vec<u32> {
        self.tasks.values().map(|m| m.root).collect()
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

    /// Finds new descendants of every task by ancestry, and kills leftovers of tasks gone.
    pub fn discover(&mut self) {
        // Children of ramguard other than live roots: processes whose task root exited. The
        // token or the process group names their task when they kept one; a process no task
        // can claim belongs to a task already finished, and nothing may outlive its task.
        {
            for pid in self.my_children() {
                if self.owner.contains_key(&pid) || self.spared.contains(&pid) || helper(pid) {
                    continue;
                }
                match self.claim(pid) {
                    Some(task) => self.attribute(pid, task),
                    None => {
                        if is_live(pid) {
                            sigkill(pid);
                        }
                    }
                }
            }
        }
        let tasks: Vec<TaskId> = self.tasks.keys().copied().collect();
        for task in tasks {
            self.walk(task);
        }
    }

    /// Adds every descendant of the task's known processes not yet owned by another task.
    fn walk(&mut self, task: TaskId) -> usize {
        let Some(m) = self.tasks.get(&task) else {
            return 0;
        };
        let starts: Vec<u32> = m.pids.iter().copied().collect();
        let mut found = 0;
        for start in starts {
            for pid in self.reader.tree(start).unwrap_or_default() {
                if !self.owner.contains_key(&pid) {
                    self.attribute(pid, task);
                    found += 1;
                }
            }
        }
        found
    }

    fn attribute(&mut self, pid: u32, task: TaskId) {
        self.owner.insert(pid, task);
        if let Some(m) = self.tasks.get_mut(&task) {
            m.pids.insert(pid);
        }
    }

    /// The task a process reparented to ramguard names by its token or process group.
    fn claim(&self, pid: u32) -> Option<TaskId> {
        if let Some(task) = self.task_from_environ(pid) {
            return self.tasks.contains_key(&task).then_some(task);
        }
        let pgid = rustix::process::getpgid(Pid::from_raw(pid as i32))
            .ok()?
            .as_raw_nonzero()
            .get() as u32;
        let task = *self.owner.get(&pgid)?;
        self.tasks
            .get(&task)
            .is_some_and(|m| m.root == pgid)
            .then_some(task)
    }

    fn task_from_environ(&self, pid: u32) -> Option<TaskId> {
        token_of(pid)?
            .strip_prefix(&self.nonce)?
            .strip_prefix(':')?
            .parse()
            .ok()
    }

    /// Gives the task every child of ramguard no task owns: called when the task's root has
    /// been reaped, when the kernel has just reparented the root's live children to us.
    /// `children` is [`Trees::my_children`], read once after a batch of reaps (the kernel
    /// reparents a root's orphans before the root can be reaped). Returns how many
    /// processes were adopted.
    pub fn adopt_orphans(&mut self, task: TaskId, children: &[u32]) -> usize {
        if !self.tasks.contains_key(&task) {
            return 0;
        }
        let mut n = 0;
        for &pid in children {
            if self.owner.contains_key(&pid) || self.spared.contains(&pid) || helper(pid) {
                continue;
            }
            let owner = self.claim(pid).unwrap_or(task);
            self.attribute(pid, owner);
            n += 1;
        }
        n + self.walk(task)
    }

    /// ramguard's children. Orphans go to the thread that spawned their task's root, which
    /// is the supervisor's own thread: one read of `/proc/thread-self/children` (a few
    /// microseconds per reaped task) instead of every thread's file.
    pub fn my_children(&self) -> Vec<u32> {
        match std::fs::read_to_string("/proc/thread-self/children") {
            Ok(text) => text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
            Err(_) => self.reader.children(self.self_pid).unwrap_or_default(),
        }
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

    /// CPU time the task's tree has used (its live processes and the children they
    /// reaped), read at most every [`CPU_EVERY`]; `None` when it cannot be read.
    pub fn cpu_time(&mut self, task: TaskId, now: Duration) -> Option<Duration> {
        let m = self.tasks.get_mut(&task)?;
        if let Some((_, used)) = m.cpu.filter(|&(at, _)| now.saturating_sub(at) < CPU_EVERY) {
            return Some(used);
        }
        let mut used = Duration::ZERO;
        for &pid in &m.pids {
            if let Ok(Some(t)) = self.reader.cpu_time(pid) {
                used += t;
            }
        }
        m.cpu = Some((now, used));
        Some(used)
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
    /// including processes in other sessions. Returns how many processes were signalled.
    pub fn signal(&mut self, task: TaskId, signal: Signal) -> usize {
        if signal == Signal::KILL {
            return self.kill_tree(task);
        }
        self.walk(task);
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

    /// Freezes the task's whole tree, then SIGKILLs it. Returns how many live processes
    /// (zombies not counted) were killed.
    pub fn kill_tree(&mut self, task: TaskId) -> usize {
        let Some(root) = self.tasks.get(&task).map(|m| m.root) else {
            return 0;
        };
        let stopped = freeze(16, |_| {
            self.walk(task);
            self.tasks[&task].pids.iter().copied().collect()
        });
        if let Some(pg) = Pid::from_raw(root as i32) {
            let _ = kill_process_group(pg, Signal::KILL);
        }
        stopped
            .into_iter()
            .filter(|&pid| is_live(pid) && sigkill(pid))
            .count()
    }

    /// Kills whatever of the task's tree outlived its root (the root itself is reaped),
    /// its orphans among `children` included ([`Trees::adopt_orphans`]). Returns how many
    /// live processes were killed.
    pub fn kill_leftovers(&mut self, task: TaskId, children: &[u32]) -> usize {
        self.adopt_orphans(task, children);
        if self.others(task) == 0 {
            return 0;
        }
        let root_live = self.tasks.get(&task).is_some_and(|m| is_live(m.root));
        self.kill_tree(task).saturating_sub(usize::from(root_live))
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

/// Freezes a tree that may still fork: SIGSTOPs every pid `walk` returns that is not stopped
/// yet, and walks again (given what is stopped so far) until nothing new appears or after
/// `rounds` walks. A stopped process cannot fork, so the set it returns is the whole tree.
/// Shared by [`Trees::kill_tree`] and the sentinel's sweep.
pub fn freeze(rounds: usize, mut walk: impl FnMut(&BTreeSet<u32>) -> Vec<u32>) -> BTreeSet<u32> {
    let mut stopped: BTreeSet<u32> = BTreeSet::new();
    for _ in 0..rounds {
        let fresh: Vec<u32> = walk(&stopped)
            .into_iter()
            .filter(|p| !stopped.contains(p))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = kill_process(p, Signal::STOP);
            }
            stopped.insert(pid);
        }
    }
    stopped
}

/// Returns true if and only if the process exists and is not a zombie.
fn is_live(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Returns true if and only if a child of ramguard is in ramguard's own process group: a
/// helper ramguard started itself, never a task's (every root leads its own group, and its
/// descendants inherit that group or make new ones).
fn helper(pid: u32) -> bool {
    let group = |p: Option<Pid>| rustix::process::getpgid(p).ok();
    match Pid::from_raw(pid as i32) {
        Some(p) => group(Some(p)).is_some_and(|g| Some(g) == group(None)),
        None => false,
    }
}

/// SIGKILL to one process; true if it was delivered.
fn sigkill(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|p| kill_process(p, Signal::KILL).is_ok())
}
