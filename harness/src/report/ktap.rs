//! KTAP version 1 (the kernel's Documentation/dev-tools/ktap.rst), the format of kselftest
//! that KernelCI, LAVA and LKFT parse: one test point per case and iteration, `# SKIP` for a
//! case not run, `# ERROR` for one that reached no verdict, `# TIMEOUT` for one past its time
//! limit, and the reason as diagnostic lines before its result line.

use super::{headline_text, Properties};
use crate::outcome::{CaseResult, Outcome};

/// The KTAP document of `results`, with the run's properties as diagnostic lines.
pub fn ktap(results: &[CaseResult], properties: &Properties) -> String {
    let mut out = String::from("KTAP version 1\n");
    for (name, value) in properties {
        out.push_str(&format!("# {name}: {}\n", one_line(value)));
    }
    out.push_str(&format!("1..{}\n", results.len()));
    let several_iterations = results.iter().any(|r| r.iteration > 1);
    for (number, result) in results.iter().enumerate() {
        let description = if several_iterations {
            format!("{} iteration {}", result.name, result.iteration)
        } else {
            result.name.clone()
        };
        // A description may not hold `#`; case names never do, but say so here.
        let description = description.replace('#', "");
        for line in result.outcome.reason().unwrap_or("").lines() {
            out.push_str(&format!("# {description}: {line}\n"));
        }
        for line in headline_text(result).lines() {
            out.push_str(&format!("# {description}: {line}\n"));
        }
        let first = result
            .outcome
            .reason()
            .map(|r| one_line(r.lines().next().unwrap_or("")))
            .unwrap_or_default();
        let number = number + 1;
        out.push_str(&match &result.outcome {
            Outcome::Passed => format!("ok {number} {description}\n"),
            Outcome::NotRun(_) => format!("ok {number} {description} # SKIP {first}\n"),
            Outcome::Failed(_) if result.outcome.is_timeout() => {
                format!("not ok {number} {description} # TIMEOUT {first}\n")
            }
            Outcome::Failed(_) => format!("not ok {number} {description}\n"),
            Outcome::Error(_) => format!("not ok {number} {description} # ERROR {first}\n"),
        });
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    out.push_str(&format!(
        "# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:{}\n",
        count(|o| *o == Outcome::Passed),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::NotRun(_))),
        count(|o| matches!(o, Outcome::Error(_))),
    ));
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

pub mod checker {
    //! A KTAP version 1 reader that follows the spec strictly for what sendtest writes: a
    //! version line first, a plan, result lines numbered from 1 in order and as many as the
    //! plan says, descriptions without `#`, known directives only, TIMEOUT and ERROR on `not
    //! ok` only, and every other line a diagnostic (`# …`).

    /// One test point as read.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Point {
        pub ok: bool,
        pub description: String,
        pub directive: Option<String>,
    }

    pub fn read(text: &str) -> Result<Vec<Point>, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "KTAP version 1")) => {}
            other => return Err(format!("the first line is not `KTAP version 1`: {other:?}")),
        }
        let mut plan = None;
        let mut points = Vec::new();
        for (i, line) in lines {
            let at = i + 1;
            if let Some(n) = line.strip_prefix("1..") {
                if plan.is_some() || !points.is_empty() {
                    return Err(format!("line {at}: a plan after the plan or the results"));
                }
                plan = Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("line {at}: bad plan"))?,
                );
                continue;
            }
            let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
                (true, rest)
            } else if let Some(rest) = line.strip_prefix("not ok ") {
                (false, rest)
            } else if line.starts_with("# ") || line == "#" {
                continue;
            } else {
                return Err(format!(
                    "line {at}: neither a result nor a diagnostic: {line}"
                ));
            };
            let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let number: usize = number
                .parse()
                .map_err(|_| format!("line {at}: no test number"))?;
            if number != points.len() + 1 {
                return Err(format!("line {at}: test {number} out of order"));
            }
            let (description, directive) = match rest.split_once(" # ") {
                Some((d, directive)) => (d, Some(directive)),
                None => (rest, None),
            };
            if description.contains('#') {
                return Err(format!("line {at}: `#` in the description"));
            }
            let directive = directive.map(|d| d.split(' ').next().unwrap_or("").to_string());
            match directive.as_deref() {
                None | Some("SKIP") | Some("XFAIL") => {}
                Some("TIMEOUT") | Some("ERROR") if !ok => {}
                Some(other) => {
                    return Err(format!(
                        "line {at}: directive {other} on an `ok` = {ok} line"
                    ))
                }
            }
            points.push(Point {
                ok,
                description: description.to_string(),
                directive,
            });
        }
        match plan {
            Some(n) if n == points.len() => Ok(points),
            Some(n) => Err(format!("the plan says {n} tests, {} ran", points.len())),
            None => Err("no plan line".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checker::{read, Point};
    use super::*;
    use std::time::Duration;

    fn result(name: &str, iteration: u32, outcome: Outcome) -> CaseResult {
        CaseResult {
            name: name.into(),
            iteration,
            outcome,
            elapsed: Duration::from_millis(1500),
            dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn every_outcome_reads_back_as_the_spec_says() {
        let properties = vec![("kernel", "6.1.0".to_string()), ("backend", "vm".into())];
        let text = ktap(
            &[
                result("passes", 1, Outcome::Passed),
                result("fails", 1, Outcome::Failed("a: field size\nmore".into())),
                result("skipped", 1, Outcome::NotRun("needs `xfs_io`".into())),
                result("broke", 1, Outcome::Error("`mkfs.btrfs` failed".into())),
                result(
                    "hangs",
                    1,
                    Outcome::Failed("timed out: the case passed its time limit of 300s".into()),
                ),
            ],
            &properties,
        );
        let points = read(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let point = |ok, description: &str, directive: Option<&str>| Point {
            ok,
            description: description.into(),
            directive: directive.map(String::from),
        };
        assert_eq!(
            points,
            [
                point(true, "passes", None),
                point(false, "fails", None),
                point(true, "skipped", Some("SKIP")),
                point(false, "broke", Some("ERROR")),
                point(false, "hangs", Some("TIMEOUT")),
            ]
        );
        assert!(
            text.contains("# fails: a: field size\n# fails: more\nnot ok 2 fails\n"),
            "{text}"
        );
        assert!(text.contains("# kernel: 6.1.0\n"), "{text}");
        assert!(text.ends_with("# Totals: pass:1 fail:2 xfail:0 xpass:0 skip:1 error:1\n"));
    }

    #[test]
    fn iterations_are_told_apart_and_the_checker_refuses_bad_documents() {
        let text = ktap(
            &[
                result("c", 1, Outcome::Passed),
                result("c", 2, Outcome::Passed),
            ],
            &Vec::new(),
        );
        let points = read(&text).unwrap();
        assert_eq!(points[1].description, "c iteration 2");
        assert!(read("TAP version 13\n1..0\n").is_err());
        assert!(
            read("KTAP version 1\n1..2\nok 1 a\n").is_err(),
            "short of its plan"
        );
        assert!(
            read("KTAP version 1\n1..1\nok 2 a\n").is_err(),
            "misnumbered"
        );
        assert!(read("KTAP version 1\n1..1\nok 1 a # TIMEOUT\n").is_err());
        assert!(read("KTAP version 1\n1..1\nstray\nok 1 a\n").is_err());
    }
}
