//! JUnit XML, for CI systems that show test reports (GitLab, Jenkins, GitHub through actions).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{case_label, file_tail, first_line, headline_text, Properties};
use crate::outcome::{CaseResult, Outcome};

/// JUnit XML: one test suite with the run's properties, one test case per case and
/// iteration. A failed case carries its reason, the end of its command log and its kernel log
/// slice; an environment error is a JUnit error; a case not run is skipped with its reason.
pub fn junit(results: &[CaseResult], properties: &Properties, run_dir: &Path) -> Result<String> {
    let mut suite = TestSuite::new("sendtest");
    for (name, value) in properties {
        suite.add_property(Property::new(*name, value.as_str()));
    }
    let mut total = Duration::ZERO;
    for result in results {
        total += result.elapsed;
        let status = match &result.outcome {
            Outcome::Passed => TestCaseStatus::success(),
            Outcome::NotRun(why) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(why.as_str());
                status
            }
            Outcome::Failed(why) | Outcome::Error(why) => {
                let kind = if matches!(result.outcome, Outcome::Failed(_)) {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut status = TestCaseStatus::non_success(kind);
                status.set_message(first_line(why));
                status.set_description(why.as_str());
                status
            }
        };
        let mut case = TestCase::new(case_label(result), status);
        case.set_classname("sendtest").set_time(result.elapsed);
        let shown = headline_text(result);
        if result.outcome != Outcome::Passed {
            let log_tail = file_tail(&result.dir, &["commands.log", "host-commands.log"]);
            let kernel_tail = file_tail(&result.dir, &["dmesg", "console.log"]);
            case.set_system_out(format!(
                "results: {}\n{shown}{log_tail}",
                result.dir.display()
            ));
            case.set_system_err(kernel_tail);
        } else if !shown.is_empty() {
            case.set_system_out(shown);
        }
        suite.add_test_case(case);
    }
    suite.set_time(total);
    let mut report = Report::new("sendtest");
    report.set_time(total).add_test_suite(suite);
    let mut xml = report.to_string().context("writing JUnit XML")?;
    xml.push_str(&format!("<!-- results: {} -->\n", run_dir.display()));
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::test_result as result;

    #[test]
    fn junit_parses_back_with_one_entry_per_result() {
        let properties = vec![("kernel", "6.1.0".to_string()), ("backend", "vm".into())];
        let xml = junit(
            &[
                result(Outcome::Passed),
                CaseResult {
                    name: "bad <case>".into(),
                    ..result(Outcome::Failed("wrong data & more\nsecond line".into()))
                },
                CaseResult {
                    name: "skipped".into(),
                    ..result(Outcome::NotRun("no qemu".into()))
                },
            ],
            &properties,
            "r".as_ref(),
        )
        .unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("a failure element");
        assert_eq!(cases[1].attribute("name"), Some("bad <case>"));
        assert_eq!(failure.attribute("message"), Some("wrong data & more"));
        assert!(cases[2].children().any(|n| n.has_tag_name("skipped")));
        let kernel = doc
            .descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("kernel"))
            .expect("a kernel property");
        assert_eq!(kernel.attribute("value"), Some("6.1.0"));
    }
}
