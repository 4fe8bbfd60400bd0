//! `sendtest list` and `sendtest manifest`: what the cases are, and what a tree holds.

use std::path::PathBuf;

use anyhow::Result;
use sendtest::case::{Case, Require};
use sendtest::manifest::{self, Ignore, Manifest};
use sendtest::report::{json_string, EXIT_FAILED, EXIT_PASSED};
use sendtest::runner::{self, Selection};

use crate::args::{out, say};

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only the cases whose name contains any of these.
    filters: Vec<String>,
    /// Only the cases in this group (repeatable); default: every case.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Leave out the cases in this group (repeatable).
    #[arg(short = 'x', long = "exclude-group", value_name = "GROUP")]
    exclude_groups: Vec<String>,
    /// One JSON document: each case's name, groups, requirements, summary and fix.
    #[arg(long)]
    json: bool,
    /// The filesystem configurations `run -c` takes, instead of the cases.
    #[arg(short = 'c', long = "configurations")]
    configurations: bool,
}

/// `sendtest list -c`: each configuration, its options and what it is for.
fn list_configurations() {
    let all = sendtest::configuration::ALL;
    let width = all.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for config in all {
        out(&format!(
            "{:width$}  {}\n{:width$}  {}\n",
            config.name,
            config.describe(),
            "",
            config.summary
        ));
    }
}

/// The cases `args` select; with no filter or group, all of them (not only `auto`, as `run`
/// takes).
pub fn listed(args: &ListArgs) -> Result<Vec<&'static Case>> {
    let everything = args.filters.is_empty() && args.groups.is_empty();
    let selection = Selection {
        names: args.filters.clone(),
        groups: if everything {
            all_groups()
        } else {
            args.groups.clone()
        },
        exclude_groups: args.exclude_groups.clone(),
        exclude_names: Vec::new(),
    };
    runner::select(cases::ALL, &selection).map_err(anyhow::Error::msg)
}

fn all_groups() -> Vec<String> {
    let mut groups: Vec<String> = cases::ALL
        .iter()
        .flat_map(|c| c.groups.iter().map(|g| g.to_string()))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

pub fn list(args: &ListArgs) -> Result<u8> {
    if args.configurations {
        list_configurations();
        return Ok(EXIT_PASSED);
    }
    let cases = listed(args)?;
    if args.json {
        out(&list_json(&cases));
        return Ok(EXIT_PASSED);
    }
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let groups_width = cases
        .iter()
        .map(|c| c.groups.join(",").len())
        .max()
        .unwrap_or(0);
    for case in cases {
        let needs = requirements(case);
        out(&format!(
            "{:<width$}  {:<groups_width$}  {}{}\n",
            case.name,
            case.groups.join(","),
            case.summary,
            if needs.is_empty() {
                String::new()
            } else {
                format!(" (needs {})", needs.join(", "))
            }
        ));
    }
    Ok(EXIT_PASSED)
}

/// What a case requires, in words.
fn requirements(case: &Case) -> Vec<String> {
    case.requires
        .iter()
        .map(|r| match r {
            Require::Command { program, .. } => format!("`{program}`"),
            Require::SendProtocol(n) => format!("send protocol {n}"),
            Require::KernelFeature(name) => format!("btrfs feature {name}"),
            Require::MkfsFeature(name) => format!("mkfs feature {name}"),
            Require::FailNth => "fail-nth (a guest)".to_string(),
        })
        .collect()
}

fn list_json(cases: &[&Case]) -> String {
    let string = |s: &str| json_string(s);
    let list = |items: Vec<String>| {
        format!(
            "[{}]",
            items
                .iter()
                .map(|i| string(i))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let entries: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                "{{\"name\":{},\"groups\":{},\"requires\":{},\"summary\":{},\"fix\":{{\"commit\":{},\"subject\":{},\"fstests\":{}}}}}",
                string(c.name),
                list(c.groups.iter().map(|g| g.to_string()).collect()),
                list(requirements(c)),
                string(c.summary),
                string(c.fix.commit),
                string(c.fix.subject),
                c.fix.fstests.map_or("null".into(), string),
            )
        })
        .collect();
    format!("{{\"cases\":[{}]}}\n", entries.join(","))
}

/// Fields a plain copy of a tree (or a receive) can never keep, or that reading the tree to
/// copy or hash it changes: what `manifest --compare` leaves out unless `--all-fields`.
const NEVER_KEPT: &[&str] = &["ctime", "atime"];

#[derive(clap::Args)]
pub struct ManifestArgs {
    /// A directory to take the manifest of.
    #[arg(required_unless_present = "compare")]
    path: Option<PathBuf>,
    /// Compare SOURCE with RECEIVED (directories or saved manifests); exit 1 if they differ.
    /// ctime and atime are left out (no copy or receive keeps ctime, and reading a tree to copy
    /// it changes atime) unless --all-fields.
    #[arg(long, num_args = 2, value_names = ["SOURCE", "RECEIVED"], conflicts_with = "path")]
    compare: Option<Vec<PathBuf>>,
    /// Fields to leave out of the comparison (repeatable): ctime, atime, xattr, xattr.user.foo…;
    /// PATH:FIELD leaves one out at one path only (.:mtime, the root's mtime).
    #[arg(long, value_name = "FIELD")]
    ignore: Vec<String>,
    /// Compare every field, ctime and atime included.
    #[arg(long, requires = "compare")]
    all_fields: bool,
}

pub fn manifest(args: &ManifestArgs) -> Result<u8> {
    let Some(pair) = &args.compare else {
        let path = args
            .path
            .as_ref()
            .expect("clap requires a path without --compare");
        out(&Manifest::load(path)?.to_text());
        return Ok(EXIT_PASSED);
    };
    let mut fields: Vec<String> = args.ignore.clone();
    if !args.all_fields {
        fields.extend(NEVER_KEPT.iter().map(|f| f.to_string()));
    }
    let ignore = Ignore::new(&fields)?;
    let (source, received) = (Manifest::load(&pair[0])?, Manifest::load(&pair[1])?);
    let differences = manifest::compare(&source, &received, &ignore);
    for difference in &differences {
        out(&format!("{difference}\n"));
    }
    let left_out = if args.all_fields {
        String::new()
    } else {
        " (ctime and atime left out; --all-fields compares them)".to_string()
    };
    if differences.is_empty() {
        say(&format!(
            "no differences in {} paths{left_out}",
            source.entries.len()
        ));
        return Ok(EXIT_PASSED);
    }
    say(&format!("{} difference(s){left_out}", differences.len()));
    Ok(EXIT_FAILED)
}
