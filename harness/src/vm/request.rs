//! What the host asks of a guest, carried on the guest kernel's command line as `sendtest.*`
//! words: encoded here for qemu's `-append` and decoded here by the guest's init, so the two
//! cannot drift apart.

use std::time::Duration;

use crate::context::{CaseOptions, RandomKnobs, DEFAULT_TIMEOUT};

/// The word that asks the guest only to say its init is up (the KVM probe).
pub const PROBE: &str = "sendtest.probe";
/// The word that asks for an interactive shell instead of a case.
const SHELL: &str = "sendtest.shell";
/// The word that asks the guest to keep the coverage counters of the case's run.
const COVERAGE: &str = "sendtest.coverage";

/// One guest's task.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Request {
    /// The case to run.
    pub case: Option<String>,
    /// Only say that init is up, then power off.
    pub probe: bool,
    /// An interactive shell on the console instead of a case (`sendtest shell`).
    pub shell: bool,
    /// Keep the kernel's and btrfs-progs' coverage counters with the case's results
    /// (`sendtest coverage`).
    pub coverage: bool,
    pub scratch_disks: usize,
    /// A key written to /proc/sysrq-trigger before the case, to test crash handling (`c`);
    /// given by hand with `--kernel-arg sendtest.sysrq=c`, never encoded by the host.
    pub sysrq: Option<String>,
    /// `--duration` of the host's run, in seconds.
    pub duration: Option<u64>,
    /// The case's time limit in the guest beyond its duration, in seconds.
    pub timeout: Option<u64>,
    /// `--load-factor` of the host's run.
    pub load_factor: Option<f64>,
    /// `--seed`, `--ops`, `--snapshots` of the host's run.
    pub random: RandomKnobs,
    /// The configuration's name (`-c`), unless it is the default.
    pub configuration: Option<String>,
}

impl Request {
    /// Run `case` on `scratch_disks` disks with `options`, giving up after `timeout` (beyond
    /// the duration) inside the guest.
    pub fn case(
        case: &str,
        scratch_disks: usize,
        options: &CaseOptions,
        timeout: Duration,
    ) -> Request {
        Request {
            case: Some(case.to_string()),
            scratch_disks,
            duration: options.duration.map(|d| d.as_secs()),
            timeout: Some(timeout.as_secs().max(1)),
            load_factor: (options.load_factor != 1.0).then_some(options.load_factor),
            random: options.random,
            configuration: (!options.configuration.is_default())
                .then(|| options.configuration.name.to_string()),
            ..Request::default()
        }
    }

    /// The options the case runs with in the guest.
    pub fn options(&self) -> CaseOptions {
        CaseOptions {
            duration: self.duration.map(Duration::from_secs),
            timeout: self.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            load_factor: self.load_factor.unwrap_or(1.0),
            random: self.random,
            tamper: None,
            breakage: Default::default(),
            // The host keeps a guest's disks; the guest has nothing to keep.
            keep_failed: false,
            configuration: self
                .configuration
                .as_deref()
                .and_then(crate::configuration::by_name)
                .unwrap_or(crate::configuration::DEFAULT),
        }
    }

    /// The `sendtest.*` words, space-separated.
    pub fn to_cmdline(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if self.probe {
            words.push(PROBE.into());
        }
        if self.shell {
            words.push(SHELL.into());
        }
        if self.coverage {
            words.push(COVERAGE.into());
        }
        let mut put = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                words.push(format!("sendtest.{name}={value}"));
            }
        };
        put("case", self.case.clone());
        put(
            "disks",
            (self.scratch_disks > 0).then(|| self.scratch_disks.to_string()),
        );
        put("sysrq", self.sysrq.clone());
        put("duration", self.duration.map(|n| n.to_string()));
        put("timeout", self.timeout.map(|n| n.to_string()));
        put("load_factor", self.load_factor.map(|f| f.to_string()));
        put("seed", self.random.seed.map(|n| n.to_string()));
        put("ops", self.random.ops.map(|n| n.to_string()));
        put("snapshots", self.random.snapshots.map(|n| n.to_string()));
        put("receive", self.random.receive.map(|r| r.name().to_string()));
        put("parents", self.random.parents.map(|p| p.name().to_string()));
        put("seeds", self.random.seeds.map(|n| n.to_string()));
        put("no_shrink", self.random.no_shrink.then(|| "1".to_string()));
        put("config", self.configuration.clone());
        words.join(" ")
    }

    /// Reads the `sendtest.*` words of a kernel command line; others are passed over.
    pub fn parse(cmdline: &str) -> Request {
        let mut request = Request::default();
        for word in cmdline.split_whitespace() {
            match word.split_once('=') {
                Some(("sendtest.case", name)) => request.case = Some(name.to_string()),
                Some(("sendtest.disks", n)) => request.scratch_disks = n.parse().unwrap_or(0),
                Some(("sendtest.sysrq", key)) => request.sysrq = Some(key.to_string()),
                Some(("sendtest.duration", seconds)) => request.duration = seconds.parse().ok(),
                Some(("sendtest.timeout", seconds)) => request.timeout = seconds.parse().ok(),
                Some(("sendtest.load_factor", f)) => request.load_factor = f.parse().ok(),
                Some(("sendtest.seed", n)) => request.random.seed = n.parse().ok(),
                Some(("sendtest.ops", n)) => request.random.ops = n.parse().ok(),
                Some(("sendtest.snapshots", n)) => request.random.snapshots = n.parse().ok(),
                Some(("sendtest.receive", way)) => request.random.receive = way.parse().ok(),
                Some(("sendtest.parents", way)) => request.random.parents = way.parse().ok(),
                Some(("sendtest.seeds", n)) => request.random.seeds = n.parse().ok(),
                Some(("sendtest.no_shrink", n)) => request.random.no_shrink = n == "1",
                Some(("sendtest.config", name)) => request.configuration = Some(name.to_string()),
                None if word == PROBE => request.probe = true,
                None if word == SHELL => request.shell = true,
                None if word == COVERAGE => request.coverage = true,
                _ => {}
            }
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_host_encodes_the_guest_decodes() {
        let options = CaseOptions {
            duration: Some(Duration::from_secs(60)),
            load_factor: 2.5,
            random: RandomKnobs {
                seed: Some(7),
                ops: Some(2000),
                snapshots: Some(10),
                receive: Some(crate::random::Receive::Twice),
                parents: Some(crate::random::Parents::Clones),
                seeds: Some(4),
                no_shrink: true,
            },
            configuration: crate::configuration::by_name("holes").unwrap(),
            ..CaseOptions::default()
        };
        let request = Request::case("random", 3, &options, Duration::from_secs(270));
        let line = format!("console=ttyS0 quiet {}\n", request.to_cmdline());
        let back = Request::parse(&line);
        assert_eq!(back, request, "{line}");
        let options_back = back.options();
        assert_eq!(options_back.duration, options.duration);
        assert_eq!(options_back.load_factor, 2.5);
        assert_eq!(options_back.random, options.random);
        assert_eq!(options_back.configuration.name, "holes");
        assert_eq!(options_back.timeout, Duration::from_secs(270));
        let plain = Request::case(
            "ro-flip-with-delalloc",
            3,
            &CaseOptions::default(),
            Duration::from_secs(270),
        );
        assert_eq!(
            plain.to_cmdline(),
            "sendtest.case=ro-flip-with-delalloc sendtest.disks=3 sendtest.timeout=270"
        );
    }

    #[test]
    fn reads_a_probe_and_a_hand_given_sysrq() {
        assert!(Request::parse("quiet sendtest.probe").probe);
        let request = Request::parse("sendtest.case=x sendtest.disks=3 sendtest.sysrq=c");
        assert_eq!(request.sysrq.as_deref(), Some("c"));
        let probe = Request {
            probe: true,
            ..Request::default()
        };
        assert!(Request::parse(&probe.to_cmdline()).probe);
        let shell = Request {
            shell: true,
            coverage: true,
            scratch_disks: 3,
            ..Request::default()
        };
        assert_eq!(Request::parse(&shell.to_cmdline()), shell);
    }
}
