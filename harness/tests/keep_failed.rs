//! `--keep-failed`: a failed case's scratch images stay, with the commands to mount them, and
//! nothing else of it is held. Alone in its file, so that no other test's loop devices are
//! counted.

mod support;

use sendtest::context::CaseOptions;
use sendtest::finding::detected;
use sendtest::runner::Outcome;
use support::{our_leftovers, run_loop, test_case as case};

/// [`our_leftovers`], after giving autoclear loop devices a moment to go.
fn our_leftovers_after_settling() -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let found = our_leftovers();
        if found.is_empty() || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_failed_case_keeps_its_images_with_keep_failed_and_holds_nothing_else() {
    if !sendtest::preflight::loopback_or_skip("keep_failed") {
        return;
    }
    let fails = case("fails-with-a-file", |t| {
        let fs = t.scratch("source")?;
        std::fs::write(fs.join("evidence"), "what the case left")?;
        Err(detected("the kernel did something wrong"))
    });
    let options = CaseOptions {
        keep_failed: true,
        ..CaseOptions::default()
    };
    let (result, _results) = run_loop(&fails, options);
    assert!(
        matches!(result.outcome, Outcome::Failed(_)),
        "{:?}",
        result.outcome
    );
    let headlines = std::fs::read_to_string(result.dir.join("headlines")).unwrap();
    let dir = headlines
        .split("kept in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no note of kept images: {headlines}"));
    let image = dir.join("source.img");
    assert!(
        headlines.contains(&format!("mount -o loop,ro {}", image.display())),
        "{headlines}"
    );
    // Nothing is held but the directory: no loop device or mount.
    assert_eq!(our_leftovers_after_settling(), Vec::<String>::new());
    // The kept filesystem has what the case wrote.
    let look = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-o", "loop,ro"])
        .arg(&image)
        .arg(look.path())
        .status()
        .unwrap();
    assert!(mounted.success());
    let evidence = std::fs::read_to_string(look.path().join("evidence"));
    std::process::Command::new("umount")
        .arg(look.path())
        .status()
        .unwrap();
    assert_eq!(evidence.unwrap(), "what the case left");
    std::fs::remove_dir_all(&dir).unwrap();

    let passes = case("passes", |t| {
        t.scratch("source")?;
        Ok(())
    });
    let (result, _results) = run_loop(&passes, options);
    assert_eq!(result.outcome, Outcome::Passed);
    assert!(
        !result.dir.join("headlines").exists(),
        "a pass keeps nothing"
    );
}
