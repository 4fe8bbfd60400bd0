//! One JSON document for machines.

use std::path::Path;

use super::{exit_code, headline_text, json_string, Properties};
use crate::outcome::{CaseResult, Outcome};
use crate::results::Times;

/// A JSON document for machines: the run, its properties, its exit code, and every case result.
pub fn json(
    results: &[CaseResult],
    properties: &Properties,
    previous: &Times,
    run_dir: &Path,
) -> String {
    let cases: Vec<String> = results
        .iter()
        .map(|r| {
            let previous = previous
                .get(&r.name)
                .map_or("null".to_string(), |t| format!("{:.3}", t.as_secs_f64()));
            format!(
                "{{\"name\":{},\"iteration\":{},\"outcome\":{},\"reason\":{},\"seconds\":{:.3},\"previous_seconds\":{previous},\"results\":{},\"headlines\":[{}]}}",
                json_string(&r.name),
                r.iteration,
                json_string(match r.outcome {
                    Outcome::Passed => "passed",
                    Outcome::Failed(_) => "failed",
                    Outcome::Error(_) => "error",
                    Outcome::NotRun(_) => "not_run",
                }),
                r.outcome.reason().map_or("null".to_string(), json_string),
                r.elapsed.as_secs_f64(),
                json_string(&r.dir.to_string_lossy()),
                headline_text(r)
                    .lines()
                    .map(json_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })
        .collect();
    let properties: Vec<String> = properties
        .iter()
        .map(|(name, value)| format!("{}:{}", json_string(name), json_string(value)))
        .collect();
    format!(
        "{{\"results\":{},\"properties\":{{{}}},\"exit_code\":{},\"cases\":[{}]}}\n",
        json_string(&run_dir.to_string_lossy()),
        properties.join(","),
        exit_code(results),
        cases.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::test_result as result;

    #[test]
    fn json_parses_back() {
        let text = json(
            &[result(Outcome::Failed("a \"quoted\"\nreason\u{1}".into()))],
            &vec![("seed", "42".to_string())],
            &Times::default(),
            "r".as_ref(),
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["exit_code"], 1);
        assert_eq!(value["properties"]["seed"], "42");
        assert_eq!(value["cases"][0]["outcome"], "failed");
        assert_eq!(value["cases"][0]["reason"], "a \"quoted\"\nreason\u{1}");
        assert_eq!(
            value["cases"][0]["previous_seconds"],
            serde_json::Value::Null
        );
    }
}
