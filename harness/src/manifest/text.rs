//! The text form of a manifest: `<path> key=value key=value…`, one line per path, sorted.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{bail, Context, Result};

use super::{Entry, Manifest};

const HEADER: &str = "# sendtest manifest v1";

pub(super) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' && b != b'=' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

pub(super) fn render(manifest: &Manifest) -> String {
    let mut out = format!(
        "{HEADER}: <path> then field=value; bytes outside printable ASCII, % and = are %XX\n"
    );
    for (path, entry) in &manifest.entries {
        out.push_str(path);
        for (key, value) in &entry.fields {
            let _ = write!(out, " {key}={value}");
        }
        out.push('\n');
    }
    out
}

pub(super) fn parse(text: &str) -> Result<Manifest> {
    if !text.starts_with(HEADER) {
        bail!("it does not start with `{HEADER}`");
    }
    let mut entries = BTreeMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
    {
        let mut words = line.split(' ');
        let path = words.next().unwrap_or_default().to_string();
        let mut fields = BTreeMap::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .with_context(|| format!("line {}: `{word}` is not key=value", number + 1))?;
            fields.insert(key.to_string(), value.to_string());
        }
        entries.insert(path, Entry { fields });
    }
    Ok(Manifest { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_printable_ascii_and_encodes_the_rest() {
        assert_eq!(escape(b"a/b-c.txt"), "a/b-c.txt");
        assert_eq!(escape(b"a b%=\n\xff"), "a%20b%25%3d%0a%ff");
    }

    #[test]
    fn text_form_round_trips() {
        let mut manifest = Manifest::default();
        let mut fields = BTreeMap::new();
        fields.insert("type".to_string(), "file".to_string());
        fields.insert("xattr.user.a%20b".to_string(), "v%00".to_string());
        manifest
            .entries
            .insert("dir/with%20space".to_string(), Entry { fields });
        manifest.entries.insert(".".to_string(), Entry::default());
        assert_eq!(parse(&render(&manifest)).unwrap(), manifest);
    }

    #[test]
    fn parse_rejects_other_files() {
        assert!(parse("hello\n").is_err());
        assert!(parse(&format!("{HEADER}\n. type\n")).is_err());
    }
}
