//! The results tree: `<root>/<run>/<case>/` with a `latest` link to the newest run, and
//! `<root>/times.<where>` with each case's time in its last passing run on a backend and kernel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Each case's time in its last passing run, as fstests' `check.time`: one `name seconds` line
/// per case in `<root>/times.<where>`, where `<where>` names the backend and kernel (`loop`,
/// `vm-6.1.0-56-amd64`), since a case's time depends on both.
#[derive(Debug, Default, Clone)]
pub struct Times {
    times: BTreeMap<String, Duration>,
    file: String,
}

impl Times {
    /// The times under `root` for runs `place` (a backend and kernel); none if the file is
    /// missing. Lines that do not parse are skipped.
    pub fn load(root: &Path, place: &str) -> Times {
        let file: String = format!("times.{place}")
            .chars()
            .map(|c| {
                if c == '/' || c.is_whitespace() {
                    '-'
                } else {
                    c
                }
            })
            .collect();
        let text = std::fs::read_to_string(root.join(&file)).unwrap_or_default();
        let times = text
            .lines()
            .filter_map(|line| {
                let (name, seconds) = line.split_once(' ')?;
                let seconds: f64 = seconds.trim().parse().ok()?;
                Some((name.to_string(), Duration::try_from_secs_f64(seconds).ok()?))
            })
            .collect();
        Times { times, file }
    }

    pub fn get(&self, name: &str) -> Option<Duration> {
        self.times.get(name).copied()
    }

    pub fn record(&mut self, name: &str, time: Duration) {
        self.times.insert(name.to_string(), time);
    }

    /// Writes the file through a temp file and a rename, so that two runs at once never leave
    /// half a file.
    pub fn save(&self, root: &Path) -> Result<()> {
        let text: String = self
            .times
            .iter()
            .map(|(name, time)| format!("{name} {:.3}\n", time.as_secs_f64()))
            .collect();
        let mut temp = tempfile::NamedTempFile::new_in(root)
            .with_context(|| format!("creating a temp file in {}", root.display()))?;
        std::io::Write::write_all(&mut temp, text.as_bytes())?;
        temp.persist(root.join(&self.file))
            .with_context(|| format!("writing {}", root.join(&self.file).display()))?;
        Ok(())
    }

    /// Orders `names` so that the longest cases start first (cases with no time yet before
    /// all, as they may be long); ties keep their order.
    pub fn longest_first<T>(&self, items: &mut [T], name: impl Fn(&T) -> &str) {
        items.sort_by_key(|item| std::cmp::Reverse(self.get(name(item)).unwrap_or(Duration::MAX)));
    }
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
    fn times_survive_a_round_trip_and_order_the_longest_first() {
        let root = tempfile::tempdir().unwrap();
        let mut times = Times::load(root.path(), "loop");
        assert_eq!(times.get("a"), None);
        times.record("short", Duration::from_millis(300));
        times.record("long", Duration::from_secs(20));
        times.save(root.path()).unwrap();
        let file = root.path().join("times.loop");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text + "garbage\n").unwrap();
        assert_eq!(Times::load(root.path(), "vm-6.1").get("long"), None);
        let times = Times::load(root.path(), "loop");
        assert_eq!(times.get("long"), Some(Duration::from_secs(20)));
        let mut names = ["short", "new", "long"];
        times.longest_first(&mut names, |n| n);
        assert_eq!(names, ["new", "long", "short"]);
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000Z");
        // `date -u -d @1795303503`: Sat Nov 21 23:25:03 UTC 2026
        let t = UNIX_EPOCH + Duration::from_secs(1_795_303_503);
        assert_eq!(utc_timestamp(t), "20261121T232503Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
