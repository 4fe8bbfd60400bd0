//! Field-by-field comparison of two manifests.

use std::fmt;

use anyhow::{bail, Result};

use super::{Manifest, FIELDS};

/// Fields left out of a comparison: whole fields (`ctime`), the whole `xattr` family, or one
/// attribute (`xattr.user.foo`), everywhere or at one path (`.:mtime`, the root's mtime).
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    fields: Vec<String>,
    /// (path, field): a field left out at one path only.
    at: Vec<(String, String)>,
}

impl Ignore {
    /// Checks each name against the known fields. `PATH:FIELD` leaves the field out at that
    /// path only (the field is what follows the last colon).
    pub fn new<S: AsRef<str>>(fields: &[S]) -> Result<Ignore> {
        let mut ignore = Ignore::default();
        for entry in fields {
            let entry = entry.as_ref();
            let (path, field) = match entry.rsplit_once(':') {
                Some((path, field)) if !path.is_empty() => (Some(path), field),
                _ => (None, entry),
            };
            let family = field.split('.').next().unwrap_or_default();
            if !FIELDS
                .iter()
                .any(|(name, _)| *name == field || (*name == "xattr" && family == "xattr"))
            {
                let known: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
                bail!(
                    "unknown manifest field `{field}`; known fields: {}",
                    known.join(", ")
                );
            }
            match path {
                Some(path) => ignore.at.push((path.to_string(), field.to_string())),
                None => ignore.fields.push(field.to_string()),
            }
        }
        Ok(ignore)
    }

    fn ignores(&self, path: &str, key: &str) -> bool {
        let covers = |f: &str| f == key || (f == "xattr" && key.starts_with("xattr."));
        self.fields.iter().any(|f| covers(f)) || self.at.iter().any(|(p, f)| p == path && covers(f))
    }
}

/// One way the received tree differs from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    OnlyInSource {
        path: String,
    },
    OnlyInReceived {
        path: String,
    },
    Field {
        path: String,
        field: String,
        expected: Option<String>,
        got: Option<String>,
    },
}

impl Difference {
    pub fn path(&self) -> &str {
        match self {
            Difference::OnlyInSource { path }
            | Difference::OnlyInReceived { path }
            | Difference::Field { path, .. } => path,
        }
    }

    /// The differing field, or `None` for a path present on one side only.
    pub fn field(&self) -> Option<&str> {
        match self {
            Difference::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Values longer than this are cut in messages; the manifests hold them whole.
const SHOWN_VALUE: usize = 80;

fn shown(value: &Option<String>) -> String {
    match value {
        None => "(absent)".into(),
        Some(v) if v.len() > SHOWN_VALUE => format!("{}… ({} chars)", &v[..SHOWN_VALUE], v.len()),
        Some(v) => v.clone(),
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyInSource { path } => write!(f, "{path}: only in source"),
            Difference::OnlyInReceived { path } => write!(f, "{path}: only in received"),
            Difference::Field {
                path,
                field,
                expected,
                got,
            } => {
                write!(
                    f,
                    "{path}: field {field}: expected {} got {}",
                    shown(expected),
                    shown(got)
                )
            }
        }
    }
}

/// Every difference between `source` and `received`, in path order, minus the ignored fields.
pub fn compare(source: &Manifest, received: &Manifest, ignore: &Ignore) -> Vec<Difference> {
    let mut out = Vec::new();
    for (path, expected) in &source.entries {
        let Some(got) = received.entries.get(path) else {
            out.push(Difference::OnlyInSource { path: path.clone() });
            continue;
        };
        let keys = expected.fields.keys().chain(
            got.fields
                .keys()
                .filter(|k| !expected.fields.contains_key(*k)),
        );
        let mut fields: Vec<&String> = keys.filter(|k| !ignore.ignores(path, k)).collect();
        fields.sort();
        for field in fields {
            let (e, g) = (expected.fields.get(field), got.fields.get(field));
            if e != g {
                out.push(Difference::Field {
                    path: path.clone(),
                    field: field.clone(),
                    expected: e.cloned(),
                    got: g.cloned(),
                });
            }
        }
    }
    for path in received
        .entries
        .keys()
        .filter(|p| !source.entries.contains_key(*p))
    {
        out.push(Difference::OnlyInReceived { path: path.clone() });
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

    fn manifest(rows: &[(&str, &[(&str, &str)])]) -> Manifest {
        let mut m = Manifest::default();
        for (path, fields) in rows {
            let fields = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            m.entries.insert(path.to_string(), Entry { fields });
        }
        m
    }

    #[test]
    fn a_field_can_be_left_out_at_one_path() {
        let a = manifest(&[(".", &[("mtime", "1.0")]), ("d", &[("mtime", "1.0")])]);
        let b = manifest(&[(".", &[("mtime", "2.0")]), ("d", &[("mtime", "2.0")])]);
        let text: Vec<String> = compare(&a, &b, &Ignore::new(&[".:mtime"]).unwrap())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text, ["d: field mtime: expected 1.0 got 2.0"]);
        let err = Ignore::new(&[".:mtim"]).unwrap_err().to_string();
        assert!(err.contains("unknown manifest field `mtim`"), "{err}");
    }

    #[test]
    fn names_the_path_and_the_field() {
        let a = manifest(&[("f", &[("mode", "0644"), ("ctime", "1.0")])]);
        let b = manifest(&[("f", &[("mode", "0600"), ("ctime", "2.0")])]);
        let diffs = compare(&a, &b, &Ignore::new(&["ctime"]).unwrap());
        assert_eq!(diffs.len(), 1);
        assert_eq!(
            diffs[0].to_string(),
            "f: field mode: expected 0644 got 0600"
        );
    }

    #[test]
    fn a_field_on_one_side_only_is_a_difference() {
        let a = manifest(&[("f", &[("xattr.user.a", "1")])]);
        let b = manifest(&[("f", &[])]);
        let diffs = compare(&a, &b, &Ignore::default());
        assert_eq!(
            diffs[0].to_string(),
            "f: field xattr.user.a: expected 1 got (absent)"
        );
        assert!(compare(&a, &b, &Ignore::new(&["xattr"]).unwrap()).is_empty());
    }

    #[test]
    fn paths_on_one_side_only() {
        let a = manifest(&[("a", &[]), ("b", &[])]);
        let b = manifest(&[("b", &[]), ("c", &[])]);
        let text: Vec<String> = compare(&a, &b, &Ignore::default())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text, ["a: only in source", "c: only in received"]);
    }

    #[test]
    fn unknown_ignored_field_is_refused() {
        let err = Ignore::new(&["ctim"]).unwrap_err().to_string();
        assert!(err.contains("unknown manifest field `ctim`"), "{err}");
    }
}
