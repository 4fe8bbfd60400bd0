//! External commands: every one is built with xshell's `cmd!`, logged, polled so that a stop
//! signal can kill it, and turned into an error that names the command, its status and the end
//! of its stderr.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
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

/// Why a command did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It could not be started (or waited for).
    NotStarted,
    /// It exited with a non-zero status or was killed by a signal of its own.
    Exited(ExitStatus),
    /// A stop signal to the harness ended it.
    Interrupted,
    /// It was still running at its deadline and was killed.
    TimedOut(Duration),
    /// The case it belongs to reached its time limit (given here), and it was killed.
    CaseTimeLimit(Duration),
}

/// A command that did not succeed, with the end of what it printed to stderr.
#[derive(Debug)]
pub struct CommandError {
    pub command: String,
    pub failure: Failure,
    pub stderr: String,
}

impl CommandError {
    pub fn new(command: impl Into<String>, failure: Failure, stderr: impl Into<String>) -> Self {
        CommandError {
            command: command.into(),
            failure,
            stderr: stderr.into(),
        }
    }

    /// It could not be started: `why` takes the place of stderr.
    pub fn not_started(command: impl Into<String>, why: impl Into<String>) -> Self {
        CommandError::new(command, Failure::NotStarted, why)
    }

    /// A stop signal came before or while it ran.
    pub fn interrupted_signal(command: impl Into<String>) -> Self {
        CommandError::new(command, Failure::Interrupted, "")
    }

    /// The last few lines of stderr, joined into one line.
    pub fn stderr_tail(&self) -> String {
        tail_lines(&self.stderr, STDERR_TAIL_LINES).join(" | ")
    }

    pub fn interrupted(&self) -> bool {
        self.failure == Failure::Interrupted
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failure {
            Failure::Interrupted => {
                return write!(f, "`{}` stopped: interrupted by a signal", self.command)
            }
            Failure::Exited(status) => write!(f, "`{}` failed ({status})", self.command)?,
            Failure::NotStarted => write!(f, "`{}` could not start", self.command)?,
            Failure::TimedOut(limit) => write!(
                f,
                "`{}` still ran after {}s and was killed",
                self.command,
                limit.as_secs()
            )?,
            Failure::CaseTimeLimit(limit) => write!(
                f,
                "`{}` was killed when the case reached its time limit of {}s",
                self.command,
                limit.as_secs()
            )?,
        }
        let tail = self.stderr_tail();
        if !tail.is_empty() {
            write!(f, ": {tail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {}

/// The command log of one case: every command with its status, stdout and stderr. It also
/// carries the case's time limit, so that every command of the case is killed when it passes.
pub struct CommandLog {
    file: Mutex<Option<File>>,
    /// Lines start with the time since this, so a slow step shows between two commands.
    opened: Instant,
    /// Milliseconds after `opened`; `u64::MAX` for none.
    time_limit_ms: AtomicU64,
}

impl CommandLog {
    /// A log written to `path`.
    pub fn create(path: &Path) -> std::io::Result<CommandLog> {
        Ok(CommandLog {
            file: Mutex::new(Some(File::create(path)?)),
            opened: Instant::now(),
            time_limit_ms: AtomicU64::new(u64::MAX),
        })
    }

    /// From now on, commands logged here are killed once `limit` has passed since the log was
    /// opened.
    pub fn set_time_limit(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX - 1);
        self.time_limit_ms.store(ms, Ordering::SeqCst);
    }

    fn time_limit(&self) -> Option<Duration> {
        match self.time_limit_ms.load(Ordering::SeqCst) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The time limit, if it has passed.
    pub fn time_limit_passed(&self) -> Option<Duration> {
        self.time_limit()
            .filter(|limit| self.opened.elapsed() >= *limit)
    }

    /// Time since the log was opened.
    pub fn elapsed(&self) -> Duration {
        self.opened.elapsed()
    }

    /// The last line written, for saying what a case was doing when it stopped.
    pub fn last_line(path: &Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .rev()
            .find(|l| l.starts_with('['))
            .map(str::to_string)
    }

    fn deadline(&self) -> Option<(Instant, Duration)> {
        self.time_limit().map(|limit| (self.opened + limit, limit))
    }

    /// A log that keeps nothing, for commands outside a case.
    pub fn discard() -> CommandLog {
        CommandLog {
            file: Mutex::new(None),
            opened: Instant::now(),
            time_limit_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Appends a free-form line, for steps that are not commands.
    pub fn note(&self, line: &str) {
        if let Some(file) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = writeln!(
                file,
                "[{:8.3}] # {line}",
                self.opened.elapsed().as_secs_f64()
            );
        }
    }

    fn record(&self, command: &str, elapsed: Duration, result: &Result<Output, CommandError>) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = guard.as_mut() else { return };
        let started = self.opened.elapsed().saturating_sub(elapsed);
        let _ = writeln!(file, "[{:8.3}] $ {command}", started.as_secs_f64());
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
    exited_zero(command, output(cmd, log)?)
}

/// [`run`] with at most `most` open files (RLIMIT_NOFILE) for the command, and its stdin
/// closed (as a script's `<&-` starts it): a program that leaks a descriptor per file it
/// handles runs out and fails, where it would otherwise pass, and one that takes descriptor 0
/// for a failed open (it is the first it opens) is found out. Not in a guest, whose init cannot
/// set either between fork and exec (see [`guest_init`]).
pub fn run_with_open_files(
    cmd: Cmd<'_>,
    log: &CommandLog,
    most: u64,
) -> Result<Output, CommandError> {
    let display = cmd.to_string();
    let mut command: Command = cmd.into();
    if !guest_init() {
        // SAFETY: the closure runs between fork and exec and makes only the setrlimit and
        // close system calls, which are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    most,
                    most,
                )
                .map_err(std::io::Error::from)?;
                nix::unistd::close(0).map_err(std::io::Error::from)
            });
        }
    }
    let out = output_of(display.clone(), command, log, None)?;
    exited_zero(display, out)
}

/// `out` if `command` exited 0, else the error that says how it exited.
fn exited_zero(command: String, out: Output) -> Result<Output, CommandError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(CommandError::new(
            command,
            Failure::Exited(out.status),
            out.stderr,
        ))
    }
}

/// [`run`] for a command whose stdout is long and not needed: the log gets its line count
/// instead of the lines, and the caller gets the count.
pub fn run_counting_stdout(cmd: Cmd<'_>, log: &CommandLog) -> Result<usize, CommandError> {
    let command = cmd.to_string();
    let started = Instant::now();
    let mut result = spawn_and_wait(&command, cmd.into(), None, log.deadline());
    let mut lines = 0;
    if let Ok(out) = &mut result {
        lines = out.stdout.lines().count();
        out.stdout = format!("({lines} lines, not kept)\n");
    }
    log.record(&command, started.elapsed(), &result);
    exited_zero(command, result?)?;
    Ok(lines)
}

/// Runs `cmd` and returns its output whatever its exit status. Fails only when it cannot start
/// or a stop signal arrives while it runs.
pub fn output(cmd: Cmd<'_>, log: &CommandLog) -> Result<Output, CommandError> {
    output_within(cmd, log, None)
}

/// Like [`output`], but kills the command and fails once it has run for `limit`.
pub fn output_within(
    cmd: Cmd<'_>,
    log: &CommandLog,
    limit: Option<Duration>,
) -> Result<Output, CommandError> {
    output_of(cmd.to_string(), cmd.into(), log, limit)
}

/// Runs `command` (shown as `display`) as [`output_within`] does, logging it.
fn output_of(
    display: String,
    command: Command,
    log: &CommandLog,
    limit: Option<Duration>,
) -> Result<Output, CommandError> {
    let started = Instant::now();
    let result = spawn_and_wait(&display, command, limit, log.deadline());
    log.record(&display, started.elapsed(), &result);
    result
}

fn spawn_and_wait(
    display: &str,
    command: Command,
    limit: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
) -> Result<Output, CommandError> {
    let error = |failure: Failure, stderr: String| CommandError::new(display, failure, stderr);
    // Output goes to unnamed temp files rather than pipes: nothing can block on a full pipe while
    // we poll, and no reader threads are needed.
    let (mut stdout, mut stderr) = match (tempfile::tempfile(), tempfile::tempfile()) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return Err(error(
                Failure::NotStarted,
                format!("temp file for output: {e}"),
            ))
        }
    };
    let waited = stdout
        .try_clone()
        .and_then(|out| Ok((out, stderr.try_clone()?)))
        .map_err(|e| (Failure::NotStarted, e.to_string()))
        .and_then(|(out, err)| wait_polling(command, out, err, limit, deadline, &mut |_| {}));
    let stderr_text = read_stderr(&mut stderr);
    match waited {
        Ok(status) => Ok(Output {
            status,
            stdout: read_all(&mut stdout),
            stderr: stderr_text,
        }),
        Err((failure, message)) => Err(error(failure, format!("{message}{stderr_text}"))),
    }
}

/// Runs `cmd` with stdout and stderr appended to the file at `output`, for long commands such
/// as builds whose whole output is worth keeping. `tick` is called about once a second with
/// the time so far. On failure, the error carries the end of the output file.
pub fn run_to_file(
    cmd: Cmd<'_>,
    log: &CommandLog,
    output: &Path,
    tick: &mut dyn FnMut(Duration),
) -> Result<(), CommandError> {
    let display = cmd.to_string();
    let started = Instant::now();
    let opened = File::options().create(true).append(true).open(output);
    let waited = opened
        .and_then(|out| Ok((out.try_clone()?, out)))
        .map_err(|e| {
            (
                Failure::NotStarted,
                format!("opening {}: {e}", output.display()),
            )
        })
        .and_then(|(out, err)| {
            let mut command: Command = cmd.into();
            // A build's make starts makes and compilers of its own: in a process group of
            // their own, a stop kills them all.
            command.process_group(0);
            wait_polling(command, out, err, None, log.deadline(), tick)
        });
    let failure = match waited {
        Ok(status) if status.success() => None,
        Ok(status) => Some((Failure::Exited(status), String::new())),
        Err(failed) => Some(failed),
    };
    let result = match failure {
        None => Ok(Output {
            status: ExitStatus::default(),
            stdout: String::new(),
            stderr: String::new(),
        }),
        Some((failure, message)) => {
            let text = std::fs::read_to_string(output).unwrap_or_default();
            let tail = tail_lines(&text, 20).join("\n");
            Err(CommandError::new(
                display.clone(),
                failure,
                format!("{message}{tail}"),
            ))
        }
    };
    log.record(
        &format!("{display} >> {}", output.display()),
        started.elapsed(),
        &result,
    );
    result.map(|_| ())
}

/// Spawns `command` with the given output files and polls it: a stop signal, the `limit` or the
/// case's `deadline` kills it. Returns its exit status, or why it did not finish with a message.
fn wait_polling(
    mut command: Command,
    stdout: File,
    stderr: File,
    limit: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
    tick: &mut dyn FnMut(Duration),
) -> Result<ExitStatus, (Failure, String)> {
    if interrupt::requested() {
        return Err((Failure::Interrupted, String::new()));
    }
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| (Failure::NotStarted, e.to_string()))?;
    let status = poll(&mut child, Instant::now(), limit, deadline, tick)?;
    if interrupt::requested() && !status.success() {
        return Err((Failure::Interrupted, String::new()));
    }
    Ok(status)
}

/// Waits for `child`, started at `started`, polling with a growing pause: a stop signal, the
/// `limit` or the case's `deadline` kills it. `tick` is called about once a second.
fn poll(
    child: &mut std::process::Child,
    started: Instant,
    limit: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
    tick: &mut dyn FnMut(Duration),
) -> Result<ExitStatus, (Failure, String)> {
    let mut last_tick = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err((Failure::NotStarted, format!("waiting: {e}"))),
        }
        if let Some(failure) = stop_reason(started, limit, deadline) {
            // The child is ours and not yet reaped, so its pid cannot belong to anybody else;
            // nor can the process group it leads, when it was started as a group's leader.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            if nix::unistd::getpgid(Some(pid)) == Ok(pid) {
                let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err((failure, String::new()));
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            tick(started.elapsed());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Why a command started at `started` must stop now, if it must.
fn stop_reason(
    started: Instant,
    limit: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
) -> Option<Failure> {
    if interrupt::requested() {
        Some(Failure::Interrupted)
    } else if let Some(limit) = limit.filter(|limit| started.elapsed() >= *limit) {
        Some(Failure::TimedOut(limit))
    } else {
        deadline
            .filter(|(at, _)| Instant::now() >= *at)
            .map(|(_, limit)| Failure::CaseTimeLimit(limit))
    }
}

/// Whether this is a guest's init (pid 1), where no `pre_exec` may run: it makes std fork
/// instead of posix_spawn, which the tinyconfig guest kernel refuses with ENOSYS.
fn guest_init() -> bool {
    std::process::id() == 1
}

/// Has the kernel kill `command` when the thread that starts it dies, so that a harness killed
/// with SIGKILL leaves no btrfs send or qemu running. Every caller waits for its children on the
/// thread that started them, which is what the kernel's parent-death signal watches.
fn die_with_parent(command: &mut Command) {
    // A guest's init does not die without its VM.
    if guest_init() {
        return;
    }
    // SAFETY: the closure runs between fork and exec and makes only the prctl system call,
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// A command running in the background with its stdout on a pipe that the caller reads.
/// Killed and reaped on drop, so no process outlives its owner.
pub struct Background {
    child: Option<std::process::Child>,
    command: String,
    stderr: File,
    started: Instant,
}

/// Starts `cmd` with stdout on a pipe; returns the running command and the pipe's read end.
pub fn spawn_reading(
    cmd: Cmd<'_>,
) -> Result<(Background, std::process::ChildStdout), CommandError> {
    let command = cmd.to_string();
    let error = |message: String| CommandError::not_started(&command, message);
    if interrupt::requested() {
        return Err(CommandError::interrupted_signal(command));
    }
    let stderr = tempfile::tempfile().map_err(|e| error(format!("temp file for stderr: {e}")))?;
    let handle = stderr.try_clone().map_err(|e| error(e.to_string()))?;
    let mut std_command: Command = cmd.into();
    std_command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(handle);
    die_with_parent(&mut std_command);
    let mut child = std_command.spawn().map_err(|e| error(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| error("no stdout pipe".into()))?;
    Ok((
        Background {
            child: Some(child),
            command,
            stderr,
            started: Instant::now(),
        },
        stdout,
    ))
}

impl Background {
    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for it to end (killing it on a stop signal), logs it, and fails unless it exited 0.
    pub fn wait(mut self, log: &CommandLog) -> Result<Output, CommandError> {
        let mut child = self
            .child
            .take()
            .expect("a Background has its child until it is waited for");
        let outcome = poll(&mut child, self.started, None, log.deadline(), &mut |_| {});
        let stderr = read_stderr(&mut self.stderr);
        let result = match outcome {
            Ok(status) if status.success() => Ok(Output {
                status,
                stdout: String::new(),
                stderr,
            }),
            Ok(status) => Err(CommandError::new(
                &self.command,
                Failure::Exited(status),
                stderr,
            )),
            Err((failure, message)) => Err(CommandError::new(
                &self.command,
                failure,
                format!("{message}{stderr}"),
            )),
        };
        log.record(
            &format!("{} (in the background)", self.command),
            self.started.elapsed(),
            &result,
        );
        result
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Ours and not yet reaped, so the pid is still this child's.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The most of a command's stderr that is read back: its first and last halves of this, with a
/// line between them saying how much was left out. A command that runs away printing errors (a
/// receive that says the same one for ever, until its time limit) can write gigabytes, which
/// would take the harness past its limits, and its memory, to read and log. Stdout is read
/// whole: the harness parses it (a tree's dump can be long).
const MOST_STDERR: u64 = 16 << 20;

fn read_all(file: &mut File) -> String {
    read_within(file, u64::MAX)
}

fn read_stderr(file: &mut File) -> String {
    read_within(file, MOST_STDERR)
}

/// `file` from its start, or, past `most` bytes, its first and last `most / 2` with a line
/// between them that says how many bytes it leaves out.
fn read_within(file: &mut File, most: u64) -> String {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut read = |from: u64, count: u64| {
        let mut bytes = Vec::new();
        let _ = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| (&mut *file).take(count).read_to_end(&mut bytes));
        String::from_utf8_lossy(&bytes).into_owned()
    };
    if len <= most {
        return read(0, len);
    }
    let half = most / 2;
    format!(
        "{}\n[sendtest: {} bytes of this output left out]\n{}",
        read(0, half),
        len - 2 * half,
        read(len - half, half)
    )
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
    fn a_command_run_with_few_open_files_gets_that_limit_and_no_more() {
        let sh = Shell::new().unwrap();
        let log = CommandLog::discard();
        let limits = run_with_open_files(cmd!(sh, "cat /proc/self/limits"), &log, 16).unwrap();
        let line = limits
            .stdout
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>()[3..5],
            ["16", "16"]
        );
        // Stdin is closed: the first file a command opens is descriptor 0, the second 3, which
        // a limit of 3 refuses and one of 4 allows.
        let limits = "/proc/self/limits";
        let err = run_with_open_files(cmd!(sh, "cmp {limits} {limits}"), &log, 3).unwrap_err();
        assert!(matches!(err.failure, Failure::Exited(_)), "{err}");
        run_with_open_files(cmd!(sh, "cmp {limits} {limits}"), &log, 4).unwrap();
        let err = run_with_open_files(cmd!(sh, "readlink /proc/self/fd/0"), &log, 16).unwrap_err();
        assert!(matches!(err.failure, Failure::Exited(_)), "{err}");
        assert!(run(cmd!(sh, "readlink /proc/self/fd/0"), &log).is_ok());
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let sh = Shell::new().unwrap();
        let err = run(cmd!(sh, "sendtest-no-such-program"), &CommandLog::discard()).unwrap_err();
        assert_eq!(err.failure, Failure::NotStarted);
        assert!(err.to_string().contains("could not start"), "{err}");
    }

    #[test]
    fn a_long_command_stopped_leaves_none_of_its_children() {
        // `timeout` runs `sleep` as its child: killing `timeout` alone would leave it running.
        let dir = tempfile::tempdir().unwrap();
        let log = CommandLog::create(&dir.path().join("commands.log")).unwrap();
        log.set_time_limit(Duration::from_millis(500));
        let sh = Shell::new().unwrap();
        let out = dir.path().join("out");
        let err =
            run_to_file(cmd!(sh, "timeout 60 sleep 59.125"), &log, &out, &mut |_| {}).unwrap_err();
        assert!(matches!(err.failure, Failure::CaseTimeLimit(_)), "{err}");
        std::thread::sleep(Duration::from_millis(200));
        let left: Vec<_> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0059.125\x00")
            })
            .collect();
        assert!(left.is_empty(), "left running: {left:?}");
    }

    #[test]
    fn a_command_past_its_limit_is_killed() {
        let sh = Shell::new().unwrap();
        let started = Instant::now();
        let limit = Some(Duration::from_millis(200));
        let err = output_within(cmd!(sh, "sleep 30"), &CommandLog::discard(), limit).unwrap_err();
        assert_eq!(err.failure, Failure::TimedOut(Duration::from_millis(200)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("still ran after"), "{err}");
    }

    #[test]
    fn a_background_command_is_read_and_waited_for() {
        let sh = Shell::new().unwrap();
        let (running, mut stdout) = spawn_reading(cmd!(sh, "echo streamed")).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        assert_eq!(text, "streamed\n");
        assert!(running.wait(&CommandLog::discard()).is_ok());
    }

    #[test]
    fn a_dropped_background_command_is_killed() {
        let sh = Shell::new().unwrap();
        let (mut running, _stdout) = spawn_reading(cmd!(sh, "sleep 30")).unwrap();
        assert!(running.is_running());
        let pid = running.child.as_ref().unwrap().id();
        drop(running);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "sleep {pid} outlived its guard"
        );
    }

    #[test]
    fn a_runaway_output_is_read_as_its_head_and_tail() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"first\n").unwrap();
        file.write_all(&b"again\n".repeat(100)).unwrap();
        file.write_all(b"last\n").unwrap();
        let whole = read_within(&mut file, 1 << 20);
        assert_eq!(whole.lines().count(), 102);
        let cut = read_within(&mut file, 24);
        assert_eq!(
            cut,
            "first\nagain\n\n[sendtest: 587 bytes of this output left out]\n\nagain\nlast\n"
        );
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), vec!["b", "c"]);
        assert!(tail_lines("", 3).is_empty());
    }
}
