//! External commands: every one is built with xshell's `cmd!`, logged, polled so that a stop
//! signal can kill it, and turned into an error that names the command, its status and the end
//! of its stderr.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xshell::Cmd;

use crate::interrupt;

/// How much of stderr an error message carries.
const STDERR_TAIL_LINES: usize = 6;

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A command that could not run, did not exit 0, or was stopped by a signal to the harness.
#[derive(Debug)]
pub struct CommandError {
    pub command: String,
    pub status: Option<ExitStatus>,
    pub stderr: String,
    pub interrupted: bool,
}

impl CommandError {
    /// The last few lines of stderr, joined into one line.
    pub fn stderr_tail(&self) -> String {
        tail_lines(&self.stderr, STDERR_TAIL_LINES).join(" | ")
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.interrupted {
            return write!(f, "`{}` stopped: interrupted by a signal", self.command);
        }
        match self.status {
            Some(status) => write!(f, "`{}` failed ({status})", self.command)?,
            None => write!(f, "`{}` could not start", self.command)?,
        }
        let tail = self.stderr_tail();
        if !tail.is_empty() {
            write!(f, ": {tail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {}

/// The command log of one case: every command with its status, stdout and stderr.
pub struct CommandLog {
    file: Mutex<Option<File>>,
}

impl CommandLog {
    /// A log written to `path`.
    pub fn create(path: &Path) -> std::io::Result<CommandLog> {
        Ok(CommandLog {
            file: Mutex::new(Some(File::create(path)?)),
        })
    }

    /// A log that keeps nothing, for commands outside a case.
    pub fn discard() -> CommandLog {
        CommandLog {
            file: Mutex::new(None),
        }
    }

    /// Appends a free-form line, for steps that are not commands.
    pub fn note(&self, line: &str) {
        if let Some(file) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = writeln!(file, "# {line}");
        }
    }

    fn record(&self, command: &str, elapsed: Duration, result: &Result<Output, CommandError>) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = guard.as_mut() else { return };
        let _ = writeln!(file, "$ {command}");
        let (status, stdout, stderr) = match result {
            Ok(out) => (
                format!("{}", out.status),
                out.stdout.as_str(),
                out.stderr.as_str(),
            ),
            Err(err) => (err.to_string(), "", err.stderr.as_str()),
        };
        for (label, text) in [("stdout", stdout), ("stderr", stderr)] {
            for line in text.lines() {
                let _ = writeln!(file, "  {label}: {line}");
            }
        }
        let _ = writeln!(file, "  -> {status} in {:.3}s", elapsed.as_secs_f64());
    }
}

/// Runs `cmd` and fails unless it exits 0.
pub fn run(cmd: Cmd<'_>, log: &CommandLog) -> Result<Output, CommandError> {
    let command = cmd.to_string();
    let out = output(cmd, log)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(CommandError {
            command,
            status: Some(out.status),
            stderr: out.stderr,
            interrupted: false,
        })
    }
}

/// Runs `cmd` and returns its output whatever its exit status. Fails only when it cannot start
/// or a stop signal arrives while it runs.
pub fn output(cmd: Cmd<'_>, log: &CommandLog) -> Result<Output, CommandError> {
    let command = cmd.to_string();
    let started = Instant::now();
    let result = spawn_and_wait(&command, cmd.into());
    log.record(&command, started.elapsed(), &result);
    result
}

fn spawn_and_wait(display: &str, mut command: Command) -> Result<Output, CommandError> {
    let error = |stderr: String, status: Option<ExitStatus>, interrupted: bool| CommandError {
        command: display.to_string(),
        status,
        stderr,
        interrupted,
    };
    interrupt::check().map_err(|_| error(String::new(), None, true))?;
    // Output goes to unnamed temp files rather than pipes: nothing can block on a full pipe while
    // we poll, and no reader threads are needed.
    let (mut stdout, mut stderr) = match (tempfile::tempfile(), tempfile::tempfile()) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return Err(error(format!("temp file for output: {e}"), None, false))
        }
    };
    let streams = stdout
        .try_clone()
        .and_then(|out| Ok((out, stderr.try_clone()?)));
    let (out_handle, err_handle) = streams.map_err(|e| error(e.to_string(), None, false))?;
    command
        .stdin(Stdio::null())
        .stdout(out_handle)
        .stderr(err_handle);
    let mut child = command
        .spawn()
        .map_err(|e| error(e.to_string(), None, false))?;

    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(error(format!("waiting: {e}"), None, false)),
        }
        if interrupt::requested() {
            // The child is ours and not yet reaped, so its pid cannot belong to anybody else.
            let _ = child.kill();
            let _ = child.wait();
            return Err(error(read_all(&mut stderr), None, true));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let stderr_text = read_all(&mut stderr);
    if interrupt::requested() && !status.success() {
        return Err(error(stderr_text, Some(status), true));
    }
    Ok(Output {
        status,
        stdout: read_all(&mut stdout),
        stderr: stderr_text,
    })
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last `n` non-empty lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xshell::{cmd, Shell};

    #[test]
    fn failing_command_names_itself_its_status_and_its_stderr() {
        let sh = Shell::new().unwrap();
        let path = "/nonexistent/sendtest";
        let err = run(cmd!(sh, "ls {path}"), &CommandLog::discard()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`ls /nonexistent/sendtest` failed (exit status: 2)"),
            "{text}"
        );
        assert!(text.contains("No such file or directory"), "{text}");
    }

    #[test]
    fn output_keeps_stdout_and_status() {
        let sh = Shell::new().unwrap();
        let out = output(cmd!(sh, "echo hello"), &CommandLog::discard()).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, "hello\n");
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let sh = Shell::new().unwrap();
        let err = run(cmd!(sh, "sendtest-no-such-program"), &CommandLog::discard()).unwrap_err();
        assert!(err.status.is_none());
        assert!(err.to_string().contains("could not start"), "{err}");
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), vec!["b", "c"]);
        assert!(tail_lines("", 3).is_empty());
    }
}
