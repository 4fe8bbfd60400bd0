//! Which cases a run takes: names, groups, exclusions and exclude files.

use crate::case::Case;

/// Which cases a run takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Cases named one of these, or whose name contains one that names no case exactly.
    pub names: Vec<String>,
    /// Cases in one of these groups.
    pub groups: Vec<String>,
    /// Cases in none of these groups.
    pub exclude_groups: Vec<String>,
    /// Cases not named here (exact names, from `--exclude-file`).
    pub exclude_names: Vec<String>,
}

/// The case names in an exclude file: one per line, `#` starts a comment. A line that is not
/// exactly one case name is an error naming the file and line.
pub fn parse_exclude_file(
    file: &str,
    text: &str,
    all: &[&Case],
) -> std::result::Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let at = format!("{file}:{}", number + 1);
        if entry.split_whitespace().count() > 1 {
            return Err(format!(
                "{at}: `{entry}` is not one case name (one case per line, `#` for comments)"
            ));
        }
        if !all.iter().any(|c| c.name == entry) {
            return Err(format!(
                "{at}: no case `{entry}`; `sendtest list` shows the cases"
            ));
        }
        names.push(entry.to_string());
    }
    Ok(names)
}

/// The cases `selection` takes, in `all`'s order. With neither names nor groups, the `auto`
/// group. A name or group that matches no case is an error naming it.
pub fn select<'a>(all: &'a [&'a Case], selection: &Selection) -> Result<Vec<&'a Case>, String> {
    for name in &selection.names {
        if !all.iter().any(|c| c.name.contains(name.as_str())) {
            return Err(format!(
                "no case matches `{name}`; `sendtest list` shows the cases"
            ));
        }
    }
    for group in selection.groups.iter().chain(&selection.exclude_groups) {
        if !all.iter().any(|c| c.in_group(group)) {
            return Err(format!(
                "no case is in group `{group}`; `sendtest list` shows the groups"
            ));
        }
    }
    let default_group = ["auto".to_string()];
    let groups: &[String] = if selection.names.is_empty() && selection.groups.is_empty() {
        &default_group
    } else {
        &selection.groups
    };
    Ok(all
        .iter()
        .copied()
        .filter(|c| {
            let by_name = selection.names.iter().any(|n| {
                let exact = all.iter().any(|other| other.name == n.as_str());
                if exact {
                    c.name == n.as_str()
                } else {
                    c.name.contains(n.as_str())
                }
            });
            let by_group = groups.iter().any(|g| c.in_group(g));
            (by_name || by_group)
                && !selection.exclude_groups.iter().any(|g| c.in_group(g))
                && !selection.exclude_names.iter().any(|n| n == c.name)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::case::test_case as case;

    #[test]
    fn selection_by_name_group_and_exclusion() {
        let (quick, race, manual) = (
            case("quick-one", &["auto", "quick"]),
            case("race-one", &["auto", "race"]),
            case("manual", &["stress"]),
        );
        let all = [&quick, &race, &manual];
        let names = |s: &Selection| {
            select(&all, s)
                .unwrap()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&Selection::default()),
            ["quick-one", "race-one"],
            "default: the auto group"
        );
        assert_eq!(
            names(&Selection {
                groups: strings(&["quick"]),
                ..Default::default()
            }),
            ["quick-one"]
        );
        assert_eq!(
            names(&Selection {
                exclude_groups: strings(&["race"]),
                ..Default::default()
            }),
            ["quick-one"]
        );
        assert_eq!(
            names(&Selection {
                names: strings(&["man"]),
                ..Default::default()
            }),
            ["manual"]
        );
        assert_eq!(
            names(&Selection {
                names: strings(&["-one"]),
                ..Default::default()
            }),
            ["quick-one", "race-one"],
            "a part of names"
        );
        let (plain, longer) = (case("random", &[]), case("random-concurrent", &[]));
        let both = [&plain, &longer];
        let exact = Selection {
            names: strings(&["random"]),
            ..Default::default()
        };
        let chosen: Vec<_> = select(&both, &exact)
            .unwrap()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(chosen, ["random"], "a whole name selects that case only");
        let unknown = Selection {
            groups: strings(&["nope"]),
            ..Default::default()
        };
        let Err(message) = select(&all, &unknown) else {
            panic!("an unknown group was accepted")
        };
        assert!(message.contains("no case is in group `nope`"), "{message}");
    }

    #[test]
    fn exclude_files_name_cases_and_bad_lines_are_errors() {
        let (a, b) = (case("a-case", &["auto"]), case("b-case", &["auto"]));
        let all = [&a, &b];
        let text = "# flaky here\na-case   # see bug 123\n\n";
        assert_eq!(
            parse_exclude_file("x", text, &all),
            Ok(vec!["a-case".into()])
        );
        let selection = Selection {
            exclude_names: vec!["a-case".into()],
            ..Default::default()
        };
        let names: Vec<_> = select(&all, &selection)
            .unwrap()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["b-case"]);
        assert_eq!(
            parse_exclude_file("x", "a-case\nno-case\n", &all),
            Err("x:2: no case `no-case`; `sendtest list` shows the cases".into())
        );
        assert!(parse_exclude_file("x", "a-case b-case\n", &all)
            .unwrap_err()
            .starts_with("x:1: `a-case b-case` is not one case name"));
    }
}
