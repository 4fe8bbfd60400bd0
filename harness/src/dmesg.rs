//! The kernel log of one case: from a cursor placed at the case's start, to its end.
//!
//! `/dev/kmsg` keeps a read position per open file, so the cursor is an fd seeked to the end of
//! the log when the case starts; reading it at the end yields exactly what was logged meanwhile
//! (by every process: with cases in parallel a kernel warning shows in each running case's slice).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};

const KMSG: &str = "/dev/kmsg";

/// Lines that mean the kernel found something wrong.
pub const BAD_PATTERNS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "kernel BUG",
    "Oops",
    "general protection fault",
    "Kernel panic",
    "BTRFS error",
    "BTRFS critical",
    "assertion failed",
];

/// A read position in the kernel log.
pub struct KmsgCursor {
    file: File,
}

impl KmsgCursor {
    /// Places a cursor at the end of the log, then writes `marker` there for humans reading dmesg.
    pub fn start(marker: &str) -> Result<KmsgCursor> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(KMSG)
            .with_context(|| format!("opening {KMSG} (reading the kernel log needs root)"))?;
        file.seek(SeekFrom::End(0))
            .context("seeking to the end of the kernel log")?;
        let mut writer = OpenOptions::new()
            .write(true)
            .open(KMSG)
            .context("opening /dev/kmsg to write a marker")?;
        writer
            .write_all(marker.as_bytes())
            .context("writing a marker to the kernel log")?;
        Ok(KmsgCursor { file })
    }

    /// Every message since the cursor, as `[seconds] text` lines.
    pub fn read_new(&mut self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut record = vec![0u8; 16 * 1024];
        loop {
            match self.file.read(&mut record) {
                Ok(0) => break,
                Ok(n) => lines.push(format_record(&record[..n])),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // EPIPE: records were overwritten before we read them; go on from the oldest kept.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    lines.push("[sendtest: kernel log overflowed here]".into())
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading the kernel log"),
            }
        }
        Ok(lines)
    }
}

/// `prio,seq,usec,flags;text\n KEY=value…` to `[   1.234567] text`.
fn format_record(record: &[u8]) -> String {
    let text = String::from_utf8_lossy(record);
    let first = text.lines().next().unwrap_or_default();
    let Some((header, message)) = first.split_once(';') else {
        return first.to_string();
    };
    let usec: u64 = header
        .split(',')
        .nth(2)
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    format!("[{:5}.{:06}] {message}", usec / 1_000_000, usec % 1_000_000)
}

/// The lines that match a bad pattern.
pub fn problems(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(String::as_str)
        .filter(|l| BAD_PATTERNS.iter().any(|p| l.contains(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_kmsg_record() {
        let record =
            b"4,1234,5000123,-;BTRFS error (device loop0): bad tree block\n SUBSYSTEM=block\n";
        assert_eq!(
            format_record(record),
            "[    5.000123] BTRFS error (device loop0): bad tree block"
        );
    }

    #[test]
    fn finds_warnings_and_btrfs_errors_only() {
        let lines: Vec<String> = [
            "[1.0] BTRFS info (device loop0): first mount",
            "[1.1] WARNING: CPU: 1 PID: 7 at fs/btrfs/send.c:100",
            "[1.2] BTRFS critical (device loop1): corrupt leaf",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(problems(&lines).len(), 2);
    }
}
