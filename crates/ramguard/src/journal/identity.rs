//! Which sweep a command belongs to, and the order of its params.
//!
//! A sweep run without `--name` is found by the [`super::fingerprint`] of its command
//! template: the same command resumes its sweep under whatever name it got, and a new
//! command gets a new sweep named after its script (`train`, then `train-2`, `train-3` for
//! other commands of the same script), so no user needs `--fresh` to run something new. A
//! name the user chose is taken as given; [`Journal::begin_sweep`] refuses it when it
//! belongs to another command.
//!
//! This module only reads and names; it never deletes anything.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{schema, Journal, SweepHandle};

/// The sweep a run goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameChoice {
    /// The sweep's name.
    pub name: String,
    /// True if and only if no sweep of this name exists yet.
    pub new: bool,
    /// When the derived name was taken by another command: that name and its command.
    pub taken: Option<(String, String)>,
}

/// The name of the sweep whose command has this fingerprint (the most recently run one,
/// should several).
fn by_fingerprint(conn: &Connection, fingerprint: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT name FROM sweeps WHERE fingerprint = ?1
         ORDER BY updated_unix_ms DESC, id DESC LIMIT 1",
        [fingerprint],
        |r| r.get(0),
    )
    .optional()
}

/// The name of a sweep journaled before schema v2 (no run recorded since the migration)
/// whose command template is `template`. Its fingerprint was computed from other settings,
/// so it is found by its command instead, and [`Journal::begin_sweep`] adopts it.
fn legacy_by_template(conn: &Connection, template: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT name FROM sweeps WHERE runs = 0 AND template = ?1
         ORDER BY updated_unix_ms DESC, id DESC LIMIT 1",
        [template],
        |r| r.get(0),
    )
    .optional()
}

/// The command template of the sweep named `name`, if there is one.
fn template_of(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT template FROM sweeps WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

/// See [`Journal::choose_name`].
fn choose(
    conn: &Connection,
    chosen: Option<&str>,
    stem: &str,
    fingerprint: &str,
    template: &str,
) -> rusqlite::Result<NameChoice> {
    if let Some(name) = chosen {
        return Ok(NameChoice {
            name: name.to_string(),
            new: template_of(conn, name)?.is_none(),
            taken: None,
        });
    }
    if let Some(name) = by_fingerprint(conn, fingerprint)?.or(legacy_by_template(conn, template)?) {
        return Ok(NameChoice {
            name,
            new: false,
            taken: None,
        });
    }
    let Some(template) = template_of(conn, stem)? else {
        return Ok(NameChoice {
            name: stem.to_string(),
            new: true,
            taken: None,
        });
    };
    let mut n = 2u64;
    loop {
        let name = format!("{stem}-{n}");
        if template_of(conn, &name)?.is_none() {
            return Ok(NameChoice {
                name,
                new: true,
                taken: Some((stem.to_string(), template)),
            });
        }
        n += 1;
    }
}

/// The sweep a run would go to, read without writing anything (for `--dry-run`); `None`
/// when there is no journal at `path` or it cannot be read as one.
pub fn peek_name(
    path: &Path,
    chosen: Option<&str>,
    stem: &str,
    fingerprint: &str,
    template: &str,
) -> Option<NameChoice> {
    if !path.is_file() {
        return None;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ok()?;
    let version = schema::version(&conn).ok()?;
    if version == 0 || version > schema::SCHEMA_VERSION {
        return None;
    }
    choose(&conn, chosen, stem, fingerprint, template).ok()
}

impl Journal {
    /// The name of the sweep whose command has this fingerprint (the most recently run one,
    /// should several).
    pub fn sweep_for_fingerprint(&self, fingerprint: &str) -> Result<Option<String>> {
        by_fingerprint(&self.conn, fingerprint)
            .with_context(|| schema::corrupt_context(&self.path.display().to_string()))
    }

    /// Picks the sweep for a run: the chosen name as given; else the sweep of this
    /// fingerprint (or a pre-v2 sweep of this command); else `stem`, or `stem-2`, `stem-3`,
    /// .. when that is taken.
    pub fn choose_name(
        &self,
        chosen: Option<&str>,
        stem: &str,
        fingerprint: &str,
        template: &str,
    ) -> Result<NameChoice> {
        choose(&self.conn, chosen, stem, fingerprint, template)
            .with_context(|| schema::corrupt_context(&self.path.display().to_string()))
    }

    /// Records the order in which the sweep's params were written (grid axes, JSON keys as
    /// typed, `:::` lists), for the columns of `results`. In the current group.
    pub fn set_param_order(&mut self, sweep: &SweepHandle, names: &[String]) -> Result<()> {
        self.group()?;
        let order = serde_json::to_string(names)?;
        self.conn
            .execute(
                "UPDATE sweeps SET param_order = ?2 WHERE id = ?1",
                params![sweep.id, order],
            )
            .with_context(|| format!("cannot write journal {}", self.path.display()))?;
        Ok(())
    }
}
