//! The command line as scripts see it: exit codes, one-line errors, and nothing left behind
//! when a run is stopped by a signal.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{leftovers, leftovers_after_settling, run_sendtest, spawn_sendtest, SENDTEST};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn sendtest(args: &[&str]) -> Output {
    Command::new(SENDTEST)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 and a single line on stderr that contains `text`.
fn assert_one_line_error(out: &Output, text: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(text), "{err}");
}

#[test]
fn list_shows_each_case_with_its_groups() {
    let out = sendtest(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ro-flip-with-delalloc "))
        .expect("case listed");
    assert!(line.contains("auto,quick,send,delalloc"), "{line}");
}

#[test]
fn an_unknown_case_or_group_is_a_one_line_error() {
    assert_one_line_error(
        &sendtest(&["run", "no-such-case"]),
        "no case matches `no-such-case`",
    );
    assert_one_line_error(
        &sendtest(&["run", "-g", "no-such-group"]),
        "no case is in group `no-such-group`",
    );
}

#[test]
fn a_missing_tree_is_a_one_line_error() {
    assert_one_line_error(
        &sendtest(&["manifest", "/nonexistent/sendtest"]),
        "no such tree or manifest file",
    );
}

#[test]
fn an_unknown_ignored_field_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = sendtest(&["manifest", "--ignore", "ctim", "--compare", path, path]);
    assert_one_line_error(&out, "unknown manifest field `ctim`");
}

#[test]
fn bad_usage_is_a_one_line_error() {
    assert_one_line_error(&sendtest(&["frobnicate"]), "unrecognized subcommand");
    assert_one_line_error(&sendtest(&["manifest"]), "required");
    assert_one_line_error(&sendtest(&["run", "--timeout", "0"]), "must be at least 1");
    assert_one_line_error(&sendtest(&["run", "--jobs", "0"]), "must be at least 1");
    let help = sendtest(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
}

/// `sendtest ARGS…` with PATH set to `path`.
fn sendtest_with_path(args: &[&str], path: &str) -> Output {
    Command::new(SENDTEST)
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn missing_programs_are_one_line_errors_that_name_the_package() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    assert_one_line_error(
        &sendtest_with_path(&["run", "--backend", "vm"], path),
        "apt-get install qemu-system-x86",
    );
    if is_root() {
        assert_one_line_error(
            &sendtest_with_path(&["run"], path),
            "apt-get install btrfs-progs",
        );
    }
}

#[test]
fn a_kernel_that_does_not_exist_is_a_one_line_error() {
    assert_one_line_error(
        &sendtest(&["run", "--kernel", "/nonexistent/bzImage"]),
        "cannot read kernel /nonexistent/bzImage",
    );
}

#[test]
fn compare_exits_1_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for root in [&a, &b] {
        std::fs::create_dir(root).unwrap();
        std::fs::write(root.join("f"), b"same").unwrap();
    }
    std::fs::write(b.join("f"), b"diff").unwrap();
    let saved = dir.path().join("a.manifest");
    let out = sendtest(&["manifest", a.to_str().unwrap()]);
    std::fs::write(&saved, &out.stdout).unwrap();

    let out = sendtest(
        &[
            "manifest",
            "--ignore",
            "ctime",
            "--ignore",
            "mtime",
            "--ignore",
            "atime",
            "--compare",
        ]
        .into_iter()
        .chain([saved.to_str().unwrap(), b.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("f: field sha256: expected "), "{text}");

    let out = sendtest(&[
        "manifest",
        "--compare",
        saved.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn without_root_the_loopback_backend_says_so() {
    if !is_root() || sendtest::preflight::find_in_path("setpriv").is_none() {
        eprintln!("skipped: needs root and setpriv to drop to another user");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            SENDTEST,
            "run",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&out, "needs root");
    assert!(stderr(&out).contains("--backend vm"), "{}", stderr(&out));
}

#[test]
fn an_unwritable_results_dir_is_a_one_line_error() {
    if !sendtest::preflight::loopback_or_skip("an_unwritable_results_dir") {
        return;
    }
    assert_one_line_error(
        &sendtest(&["run", "--results", "/proc/sendtest"]),
        "cannot create results directory",
    );
}

/// Starts a run, waits until it has a loop device bound, sends `signal`, and checks that it
/// exits 2 and releases everything.
fn stop_a_run_with(signal: Signal) {
    let results = tempfile::tempdir().unwrap();
    for _attempt in 0..20 {
        let mut child = spawn_sendtest(&[
            "run",
            "--results",
            results.path().to_str().unwrap(),
            "ro-flip-with-delalloc",
        ]);
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut busy = false;
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            if leftovers(pid).iter().any(|l| l.starts_with("loop device")) {
                busy = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !busy {
            // The run ended before we saw it working; try again.
            child.wait().unwrap();
            continue;
        }
        kill(Pid::from_raw(pid as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{signal} should end the run with 2; stderr: {err}"
        );
        assert_eq!(
            leftovers_after_settling(pid),
            Vec::<String>::new(),
            "stderr: {err}"
        );
        return;
    }
    panic!("never caught a run with a loop device bound");
}

#[test]
fn sigint_mid_run_releases_everything() {
    if sendtest::preflight::loopback_or_skip("sigint_mid_run") {
        stop_a_run_with(Signal::SIGINT);
    }
}

#[test]
fn sigterm_mid_run_releases_everything() {
    if sendtest::preflight::loopback_or_skip("sigterm_mid_run") {
        stop_a_run_with(Signal::SIGTERM);
    }
}

#[test]
fn a_passing_run_leaves_nothing_and_keeps_results() {
    if !sendtest::preflight::loopback_or_skip("a_passing_run") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let (out, pid) = run_sendtest(&[
        "run",
        "-g",
        "quick",
        "--results",
        results.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "1 passed, 0 failed, 0 skipped"));
    let latest = results.path().join("latest/ro-flip-with-delalloc");
    assert!(latest.join("data.received.manifest").is_file());
    assert!(Path::new(&latest).join("outcome").is_file());
    assert_eq!(leftovers_after_settling(pid), Vec::<String>::new());
}

#[test]
fn trees_that_are_not_trees_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    assert_one_line_error(
        &sendtest(&["run", "--kernel-tree", path]),
        "is not a Linux kernel tree",
    );
    assert_one_line_error(
        &sendtest(&["run", "--kernel-tree", "/nonexistent/linux"]),
        "kernel tree /nonexistent/linux does not exist",
    );
    assert_one_line_error(
        &sendtest(&["run", "--btrfs-progs-tree", path]),
        "is not a btrfs-progs tree",
    );
    assert_one_line_error(
        &sendtest(&["validate", "no-such-case", "--kernel-tree", path]),
        "no case `no-such-case`",
    );
}

/// A tree that looks like a kernel tree but whose build fails is "cannot test this commit" for
/// `git bisect run`: exit 125, not 1 (which would blame the commit) or 2.
#[test]
fn a_kernel_tree_that_does_not_build_exits_125() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("linux");
    std::fs::create_dir_all(tree.join("arch/x86")).unwrap();
    std::fs::create_dir_all(tree.join("fs/btrfs")).unwrap();
    std::fs::write(tree.join("Kconfig"), "").unwrap();
    std::fs::write(tree.join("arch/x86/Makefile"), "").unwrap();
    std::fs::write(
        tree.join("Makefile"),
        "tinyconfig:\n\t@echo 'error: this tree is broken' >&2; exit 1\n",
    )
    .unwrap();
    let out = Command::new(SENDTEST)
        .args(["run", "--kernel-tree", tree.to_str().unwrap()])
        .env("SENDTEST_CACHE", dir.path().join("cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("does not build") && err.contains("this tree is broken"),
        "{err}"
    );
}

/// A host without the tools a kernel build needs is the environment's fault, not the
/// commit's: exit 2 naming what to install, never 125 (which would make `git bisect run` skip
/// every commit).
#[test]
fn a_host_that_cannot_build_kernels_is_exit_2_naming_the_packages() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("linux");
    for path in ["arch/x86", "fs/btrfs"] {
        std::fs::create_dir_all(tree.join(path)).unwrap();
    }
    for file in ["Kconfig", "arch/x86/Makefile", "Makefile"] {
        std::fs::write(tree.join(file), "").unwrap();
    }
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(SENDTEST)
        .args(["run", "--kernel-tree", tree.to_str().unwrap()])
        .env("PATH", empty.path())
        .env("SENDTEST_CACHE", dir.path().join("cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&out, "building a kernel needs make, gcc, flex, bison, bc");
    assert!(stderr(&out).contains("apt-get install make gcc flex bison bc"));
}

#[test]
fn junit_json_and_ktap_parse_back_with_the_headlines_and_properties() {
    if !sendtest::preflight::loopback_or_skip("junit_json_and_ktap_parse_back") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let junit = results.path().join("out.xml");
    let ktap = results.path().join("out.ktap");
    // The quick group, and the random case, which has headlines to show.
    let out = sendtest(&[
        "run",
        "-g",
        "quick",
        "random",
        "--seed",
        "1",
        "--ops",
        "60",
        "--snapshots",
        "1",
        "--results",
        results.path().to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--ktap",
        ktap.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts = "random: 1 seed(s) from 1: ";
    assert!(
        stderr(&out).contains(&format!("\n  {counts}")),
        "no headline under the result: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("2 passed, 0 failed, 0 skipped"),
        "with --json the summary goes to stderr: {}",
        stderr(&out)
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no test case {name}: {xml}"))
    };
    case("ro-flip-with-delalloc");
    let system_out = case("random")
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .unwrap_or_default();
    assert!(system_out.starts_with(counts), "{xml}");
    let property = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .unwrap_or_else(|| panic!("no property {name}: {xml}"))
            .to_string()
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(property("kernel"), release.trim());
    assert_eq!(property("backend"), "loop");
    assert_eq!(property("seed"), "1");
    assert!(
        property("btrfs_progs").starts_with("btrfs-progs v"),
        "{xml}"
    );

    let text = std::fs::read_to_string(&ktap).unwrap();
    let points =
        sendtest::report::ktap_checker::read(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let mut names: Vec<&str> = points.iter().map(|p| p.description.as_str()).collect();
    names.sort();
    assert_eq!(names, ["random", "ro-flip-with-delalloc"], "{text}");
    assert!(
        points.iter().all(|p| p.ok && p.directive.is_none()),
        "{text}"
    );
    assert!(text.contains(&format!("# random: {counts}")), "{text}");
    assert!(
        text.contains(&format!("# kernel: {}", release.trim())),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["properties"]["backend"], "loop");
    assert_eq!(json["properties"]["kernel"], release.trim());
    let cases = json["cases"].as_array().unwrap();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}: {json}"))
    };
    assert_eq!(case("ro-flip-with-delalloc")["outcome"], "passed");
    assert_eq!(
        case("ro-flip-with-delalloc")["headlines"],
        serde_json::json!([])
    );
    let first = case("random")["headlines"][0].as_str().unwrap_or_default();
    assert!(first.starts_with(counts), "{json}");
}

#[test]
fn exclude_files_leave_cases_out_and_bad_ones_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exclude");
    std::fs::write(&file, "# not today\nno-such-case\n").unwrap();
    assert_one_line_error(
        &sendtest(&["run", "--exclude-file", file.to_str().unwrap()]),
        "exclude:2: no case `no-such-case`",
    );
    assert_one_line_error(
        &sendtest(&["run", "--exclude-file", "/nonexistent/exclude"]),
        "cannot read exclude file /nonexistent/exclude",
    );
    std::fs::write(&file, "ro-flip-with-delalloc  # known\n").unwrap();
    assert_one_line_error(
        &sendtest(&[
            "run",
            "-g",
            "quick",
            "--exclude-file",
            file.to_str().unwrap(),
        ]),
        "leave no case to run",
    );
}

#[test]
fn a_missing_argument_is_named() {
    assert_one_line_error(
        &sendtest(&["manifest"]),
        "the following required arguments were not provided: <PATH>",
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    // /usr has thousands of paths: far more than the pipe holds.
    let mut child = Command::new(SENDTEST)
        .args(["manifest", "/usr/share"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_copy_compares_equal_by_default_and_differs_in_ctime_with_all_fields() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(source.join("d")).unwrap();
    std::fs::write(source.join("d/f"), b"data").unwrap();
    std::fs::write(source.join("g"), b"more").unwrap();
    let copy = dir.path().join("copy");
    // A second apart, so that the copy's ctimes differ from the source's.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let (a, b) = (source.to_str().unwrap(), copy.to_str().unwrap());
    let out = sendtest(&["manifest", "--compare", a, b]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("ctime and atime left out"));
    let out = sendtest(&["manifest", "--all-fields", "--compare", a, b]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("field ctime"), "{text}");
}

#[test]
fn list_selects_and_speaks_json_and_run_dry_runs() {
    let out = sendtest(&["list", "-g", "random", "-x", "race", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["random"]);
    assert_eq!(doc["cases"][0]["requires"][0], "send protocol 2");
    let all = String::from_utf8(sendtest(&["list"]).stdout).unwrap();
    assert_eq!(all.lines().count(), cases::ALL.len(), "{all}");

    let dir = tempfile::tempdir().unwrap();
    let exclude = dir.path().join("exclude");
    std::fs::write(&exclude, "snapshot-during-send\n").unwrap();
    let out = sendtest(&["run", "-n", "-E", exclude.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        text.starts_with("would run 1 case(s) on loop devices on the running kernel")
            && text.contains("  ro-flip-with-delalloc  (auto,"),
        "{text}"
    );
    assert!(!dir.path().join("results").exists());
}

/// A race case's loop stops at the case's time limit, so the case ends as timed out (its send
/// killed), never as hung with its scratch filesystems held.
#[test]
fn a_race_case_past_its_time_limit_times_out_rather_than_hangs() {
    if !sendtest::preflight::loopback_or_skip("race_time_limit") {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = sendtest(&[
        "run",
        "--results",
        results.path().to_str().unwrap(),
        "--timeout",
        "2",
        "snapshot-during-send",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED") && text.contains("timed out:"),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
