//! Which tables a snapshot covers: `--table PATTERN` (only tables matching one of them) and
//! `--exclude-table PATTERN` (never tables matching one of them), shell-style globs (`*`, `?`,
//! `[…]`, as the `glob` crate reads them). A snapshot records its scope, and two snapshots of
//! different scopes are not compared.

use serde::{Deserialize, Serialize};

/// The tables a snapshot covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Patterns a table must match one of (every table when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Patterns no table may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
}

impl Scope {
    /// A scope from patterns; an error names a pattern that is not a valid glob.
    pub fn new(tables: Vec<String>, exclude_tables: Vec<String>) -> Result<Scope, String> {
        for p in tables.iter().chain(&exclude_tables) {
            glob::Pattern::new(p).map_err(|e| format!("table pattern {p:?}: {e}"))?;
        }
        Ok(Scope {
            tables,
            exclude_tables,
        })
    }

    /// True for the scope of every table.
    pub fn is_everything(&self) -> bool {
        self.tables.is_empty() && self.exclude_tables.is_empty()
    }

    /// True when the table `name` is in scope.
    pub fn admits(&self, name: &str) -> bool {
        self.admits_any(&[name])
    }

    /// True when a table known by any of `names` is in scope: one of them matches an
    /// included pattern (or none is given) and none matches an excluded one. PostgreSQL
    /// tables in `public` are known as `public.t` and as `t`.
    pub fn admits_any(&self, names: &[&str]) -> bool {
        let hit = |ps: &[String]| {
            ps.iter()
                .any(|p| glob::Pattern::new(p).is_ok_and(|g| names.iter().any(|n| g.matches(n))))
        };
        (self.tables.is_empty() || hit(&self.tables)) && !hit(&self.exclude_tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_then_exclude() {
        let s = Scope::new(
            vec!["birth_*".into(), "kv".into()],
            vec!["*_archive".into()],
        )
        .unwrap();
        assert!(s.admits("birth_registry"));
        assert!(s.admits("kv"));
        assert!(!s.admits("log"));
        assert!(!s.admits("birth_archive"));
        assert!(Scope::default().admits("anything"));
        assert!(Scope::new(vec!["[".into()], vec![]).is_err());
        let x = Scope::new(vec![], vec!["audit.*".into(), "tmp".into()]).unwrap();
        assert!(x.admits_any(&["public.kv", "kv"]));
        assert!(!x.admits_any(&["public.tmp", "tmp"]));
        assert!(!x.admits_any(&["audit.log"]));
    }
}
