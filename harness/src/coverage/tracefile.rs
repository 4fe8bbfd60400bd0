//! lcov's tracefile format (`geninfo(1)`): read, merged over runs, paths mapped, written back.
//! `lcov --capture` writes one per run; `genhtml` and CI coverage viewers read the merged one.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

/// What a tracefile says of one source file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileCoverage {
    /// Function name → (first line, times called).
    pub functions: BTreeMap<String, (usize, u64)>,
    /// Line → times executed, for every line that has code.
    pub lines: BTreeMap<usize, u64>,
    /// (line, block, branch) → times taken; `None` where the branch's block never ran (`-`).
    pub branches: BTreeMap<(usize, u32, u32), Option<u64>>,
}

/// Source file path → its coverage.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tracefile {
    pub files: BTreeMap<String, FileCoverage>,
}

impl Tracefile {
    pub fn parse(text: &str) -> Result<Tracefile> {
        let mut tracefile = Tracefile::default();
        let mut current: Option<(String, FileCoverage)> = None;
        for (number, line) in text.lines().enumerate() {
            let bad = || format!("tracefile line {}: `{line}`", number + 1);
            let (tag, value) = line.split_once(':').unwrap_or((line, ""));
            match tag {
                "SF" => current = Some((value.to_string(), FileCoverage::default())),
                "end_of_record" => {
                    let (name, file) = current.take().with_context(bad)?;
                    tracefile.files.entry(name).or_default().merge(&file);
                }
                "FN" | "FNDA" | "DA" | "BRDA" => {
                    let (_, file) = current.as_mut().with_context(bad)?;
                    file.record(tag, value).with_context(bad)?;
                }
                // Summaries (recomputed on writing), the test name, and what lcov may add.
                _ => {}
            }
        }
        if current.is_some() {
            bail!("tracefile ends inside a record (no end_of_record)");
        }
        Ok(tracefile)
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &Tracefile) {
        for (name, file) in &other.files {
            self.files.entry(name.clone()).or_default().merge(file);
        }
    }

    /// Renames every source path under `from` to the same path under `to` (a build's copy of a
    /// tree back to the tree), and drops the files outside `from`.
    pub fn map_prefix(self, from: &str, to: &str) -> Tracefile {
        let from = from.trim_end_matches('/');
        let to = to.trim_end_matches('/');
        let files = self
            .files
            .into_iter()
            .filter_map(|(name, file)| {
                let rest = name.strip_prefix(from)?.strip_prefix('/')?;
                Some((format!("{to}/{rest}"), file))
            })
            .collect();
        Tracefile { files }
    }

    /// Only `files` (relative to `tree`).
    pub fn only(&self, tree: &str, files: &[&str]) -> Tracefile {
        let tree = tree.trim_end_matches('/');
        let files = self
            .files
            .iter()
            .filter(|(name, _)| files.iter().any(|f| *name == &format!("{tree}/{f}")))
            .map(|(name, file)| (name.clone(), file.clone()))
            .collect();
        Tracefile { files }
    }

    /// The tracefile's text, with the summary lines lcov writes.
    pub fn write(&self) -> String {
        let mut out = String::from("TN:\n");
        for (name, file) in &self.files {
            out.push_str(&format!("SF:{name}\n"));
            let mut by_line: Vec<(&String, &(usize, u64))> = file.functions.iter().collect();
            by_line.sort_by_key(|(name, (line, _))| (*line, *name));
            for (function, (line, _)) in &by_line {
                out.push_str(&format!("FN:{line},{function}\n"));
            }
            for (function, (_, count)) in &by_line {
                out.push_str(&format!("FNDA:{count},{function}\n"));
            }
            out.push_str(&format!("FNF:{}\n", file.functions.len()));
            out.push_str(&format!(
                "FNH:{}\n",
                file.functions.values().filter(|(_, c)| *c > 0).count()
            ));
            for ((line, block, branch), taken) in &file.branches {
                let taken = taken.map_or("-".to_string(), |t| t.to_string());
                out.push_str(&format!("BRDA:{line},{block},{branch},{taken}\n"));
            }
            out.push_str(&format!("BRF:{}\n", file.branches.len()));
            out.push_str(&format!(
                "BRH:{}\n",
                file.branches
                    .values()
                    .filter(|t| t.unwrap_or(0) > 0)
                    .count()
            ));
            for (line, count) in &file.lines {
                out.push_str(&format!("DA:{line},{count}\n"));
            }
            out.push_str(&format!("LF:{}\n", file.lines.len()));
            out.push_str(&format!(
                "LH:{}\n",
                file.lines.values().filter(|c| **c > 0).count()
            ));
            out.push_str("end_of_record\n");
        }
        out
    }
}

impl FileCoverage {
    fn record(&mut self, tag: &str, value: &str) -> Result<()> {
        let fields: Vec<&str> = value.split(',').collect();
        let number =
            |i: usize| -> Result<u64> { Ok(fields.get(i).context("a field is missing")?.parse()?) };
        match tag {
            "FN" => {
                // FN:<line>,<name> (lcov 1.x) or FN:<line>,<end line>,<name> (lcov 2.x).
                let name = fields.last().context("no function name")?.to_string();
                let line = number(0)? as usize;
                self.functions.entry(name).or_insert((line, 0)).0 = line;
            }
            "FNDA" => {
                let (count, name) = value.split_once(',').context("no function name")?;
                let count: u64 = count.parse()?;
                self.functions.entry(name.to_string()).or_insert((0, 0)).1 += count;
            }
            "DA" => {
                *self.lines.entry(number(0)? as usize).or_default() += number(1)?;
            }
            "BRDA" => {
                let key = (number(0)? as usize, number(1)? as u32, number(2)? as u32);
                let taken = match fields.get(3) {
                    Some(&"-") => None,
                    _ => Some(number(3)?),
                };
                add_taken(self.branches.entry(key).or_insert(None), taken);
            }
            _ => {}
        }
        Ok(())
    }

    fn merge(&mut self, other: &FileCoverage) {
        for (name, (line, count)) in &other.functions {
            let entry = self.functions.entry(name.clone()).or_insert((*line, 0));
            if entry.0 == 0 {
                entry.0 = *line;
            }
            entry.1 += count;
        }
        for (line, count) in &other.lines {
            *self.lines.entry(*line).or_default() += count;
        }
        for (key, taken) in &other.branches {
            add_taken(self.branches.entry(*key).or_insert(None), *taken);
        }
    }
}

fn add_taken(into: &mut Option<u64>, taken: Option<u64>) {
    if let Some(t) = taken {
        *into = Some(into.unwrap_or(0) + t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "TN:\nSF:/build/fs/btrfs/send.c\nFN:10,send_cmd\nFN:30,send_update_extent\n\
        FNDA:4,send_cmd\nFNDA:0,send_update_extent\nFNF:2\nFNH:1\nBRDA:12,0,0,4\nBRDA:12,0,1,0\n\
        BRDA:31,0,0,-\nBRDA:31,0,1,-\nBRF:4\nBRH:1\nDA:10,4\nDA:12,4\nDA:30,0\nDA:31,0\nLF:4\nLH:2\nend_of_record\n";

    #[test]
    fn parses_merges_and_writes_back() {
        let mut merged = Tracefile::parse(ONE).unwrap();
        assert_eq!(Tracefile::parse(&merged.write()).unwrap(), merged);
        let other = ONE
            .replace("FNDA:0,send_update_extent", "FNDA:1,send_update_extent")
            .replace("\nDA:31,0\n", "\nDA:31,2\n")
            .replace("BRDA:31,0,0,-", "BRDA:31,0,0,1");
        merged.merge(&Tracefile::parse(&other).unwrap());
        let file = &merged.files["/build/fs/btrfs/send.c"];
        assert_eq!(file.functions["send_cmd"], (10, 8));
        assert_eq!(file.functions["send_update_extent"], (30, 1));
        assert_eq!(file.lines[&31], 2);
        assert_eq!(file.lines[&30], 0);
        assert_eq!(file.branches[&(31, 0, 0)], Some(1));
        assert_eq!(file.branches[&(31, 0, 1)], None);
        let text = merged.write();
        assert!(text.contains("FNH:2\n") && text.contains("LH:3\n") && text.contains("BRH:2\n"));
    }

    #[test]
    fn paths_map_back_to_the_tree_and_strays_are_dropped() {
        let text = format!("{ONE}{}", ONE.replace("/build/fs", "/usr/include/linux"));
        let mapped = Tracefile::parse(&text)
            .unwrap()
            .map_prefix("/build/", "/home/me/linux");
        let names: Vec<&String> = mapped.files.keys().collect();
        assert_eq!(names, ["/home/me/linux/fs/btrfs/send.c"]);
        assert_eq!(mapped.only("/home/me/linux/", &["fs/btrfs/send.c"]), mapped);
        assert!(mapped
            .only("/home/me/linux", &["fs/btrfs/ioctl.c"])
            .files
            .is_empty());
    }

    #[test]
    fn a_cut_short_or_malformed_tracefile_is_an_error() {
        assert!(Tracefile::parse("SF:/a.c\nDA:1,1\n").is_err());
        assert!(Tracefile::parse("SF:/a.c\nDA:x,1\nend_of_record\n").is_err());
        assert!(Tracefile::parse("DA:1,1\n").is_err());
    }
}
