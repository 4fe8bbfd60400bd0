//! What a case exists to detect, told apart from the environment letting it down.

use std::fmt;

/// A finding: what the case exists to detect (wrong data, a failed send or receive, a kernel
/// warning, a check error). Everything else a case returns is an environment error.
#[derive(Debug)]
pub struct Detected(pub String);

impl fmt::Display for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detected {}

/// An `anyhow::Error` carrying a [`Detected`] finding.
pub fn detected(message: impl Into<String>) -> anyhow::Error {
    Detected(message.into()).into()
}
