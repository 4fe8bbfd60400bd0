//! Progress of long steps (kernel builds, image builds, runs of many or long cases): a spinner
//! with the elapsed time when stderr is a terminal, and plain lines when it is not, as in CI
//! logs, where a spinner would only add noise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a long step says how far it is when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// One long step in progress.
pub struct Activity {
    spinner: Option<ProgressBar>,
    label: String,
    last_plain: std::sync::Mutex<Instant>,
}

impl Activity {
    /// Starts showing `label` (one line, printed at once when stderr is not a terminal).
    pub fn start(label: &str) -> Activity {
        let activity = Activity::start_quietly(label);
        if activity.spinner.is_none() {
            eprintln!("sendtest: {label}");
        }
        activity
    }

    /// Like [`Activity::start`], but without the first plain line, for a step that has already
    /// said what it does.
    pub fn start_quietly(label: &str) -> Activity {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.set_prefix(label.to_string());
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Activity {
            spinner,
            label: label.to_string(),
            last_plain: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Shows how far the step is: beside the spinner, or as a plain line at most every 30 s.
    pub fn update(&self, detail: &str) {
        match &self.spinner {
            Some(spinner) => spinner.set_message(detail.to_string()),
            None => {
                let mut last = self.last_plain.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("sendtest: {}: {detail}", self.label);
                }
            }
        }
    }

    /// Prints a line to stdout without tearing the spinner.
    pub fn println(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Like [`Activity::println`], to stderr.
    pub fn eprintln(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}
