//! The results tree: `<root>/<run>/<case>/` with a `latest` link to the newest run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Creates a fresh run directory under `root`, named by UTC time and pid, and points
/// `<root>/latest` at it.
pub fn new_run_dir(root: &Path) -> Result<PathBuf> {
    let name = format!(
        "{}-{}",
        utc_timestamp(SystemTime::now()),
        std::process::id()
    );
    let dir = root.join(&name);
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create results directory {} (pass --results DIR with a writable DIR)",
            dir.display()
        )
    })?;
    let latest = root.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&name, &latest);
    // Absolute, so that commands run from any directory find their files.
    std::fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))
}

/// `YYYYMMDDTHHMMSSZ` for `time`.
fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000Z");
        // `date -u -d @1795303503`: Sat Nov 21 23:25:03 UTC 2026
        let t = UNIX_EPOCH + Duration::from_secs(1_795_303_503);
        assert_eq!(utc_timestamp(t), "20261121T232503Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
