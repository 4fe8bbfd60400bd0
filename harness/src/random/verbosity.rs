//! How loudly the chain's `btrfs receive` runs, and what it must then print. Receive reports
//! what it does on three levels: nothing with `-q`; by default a line per subvolume it
//! receives (`At subvol NAME`, `At snapshot NAME`: what backup scripts read); with `-v` also a
//! line as each subvolume begins and as it is finished (`BTRFS_IOC_SET_RECEIVED_SUBVOL`) and
//! one for each write and clone; with `-vv` a line for each command of the stream it carries
//! out (`mkfile PATH`, `write PATH - offset=…`). Each level's lines
//! are counted against the stream's own commands ([`crate::send_stream::count`]): a receive
//! that skips a command, announces a subvolume it did not receive, or talks when told to be
//! quiet, fails the seed. A soak draws the level per seed, from bits of its own.

use crate::send_stream::{Commands, NAMES};

/// The level `btrfs receive` runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// `-q`: nothing.
    #[default]
    Quiet,
    /// No option: `At subvol NAME` or `At snapshot NAME` for each subvolume.
    Default,
    /// `-v`: those, a line as each subvolume begins and ends, and one for each `write` and
    /// `clone`.
    Verbose,
    /// `-vv`: those, and a line for each command carried out.
    Chatty,
}

/// Where the level's option goes: after `receive` (`btrfs receive -v`), or before it as
/// btrfs's global option (`btrfs -v receive`), which receive takes as its starting level and
/// raises by its own default: both must end at the same level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    #[default]
    Receive,
    Global,
}

/// A seed's bits for how receive is told to talk: the level from the top three, the placement
/// from the seventh.
fn hash(seed: u64) -> u64 {
    (seed ^ 0x10_0d_e5).wrapping_mul(0x94d0_49bb_1331_11eb)
}

impl Placement {
    /// A seed's placement: half of the seeds each, from a bit that [`Verbosity::draw`] does
    /// not read.
    pub fn draw(seed: u64) -> Placement {
        if (hash(seed) >> 57) & 1 == 0 {
            Placement::Receive
        } else {
            Placement::Global
        }
    }
}

/// The commands that receive reports at `-v` already, a line each beginning with the name.
const REPORTED_AT_V: &[&str] = &["write", "clone"];

/// The commands that receive carries out without a line of their own: the subvolume's
/// (reported apart), the end, and what btrfs-progs 6.2 ignores or does quietly.
const UNREPORTED: &[&str] = &["subvol", "snapshot", "end", "fileattr", "enable_verity"];

/// What `--chroot` prints whatever the level.
const CHROOT: &str = "Chroot to ";
/// What an encoded write that the kernel refused, and receive decompresses, adds at `-vv`.
const FALLING_BACK: &str = " - falling back to decompress and write";

impl Verbosity {
    pub const ALL: [Verbosity; 4] = [
        Verbosity::Quiet,
        Verbosity::Default,
        Verbosity::Verbose,
        Verbosity::Chatty,
    ];

    /// A seed's level: half of the seeds quiet, a quarter `-vv`, an eighth each the others.
    pub fn draw(seed: u64) -> Verbosity {
        match hash(seed) >> 61 {
            0..=3 => Verbosity::Quiet,
            4 => Verbosity::Default,
            5 => Verbosity::Verbose,
            _ => Verbosity::Chatty,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verbosity::Quiet => "quiet",
            Verbosity::Default => "default",
            Verbosity::Verbose => "-v",
            Verbosity::Chatty => "-vv",
        }
    }

    /// The option that sets it.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Verbosity::Quiet => &["-q"],
            Verbosity::Default => &[],
            Verbosity::Verbose => &["-v"],
            Verbosity::Chatty => &["-vv"],
        }
    }

    /// The options before `receive` (btrfs's) and after it (receive's) that set it.
    pub fn placed(
        self,
        placement: Placement,
    ) -> (&'static [&'static str], &'static [&'static str]) {
        match placement {
            Placement::Receive => (&[], self.options()),
            Placement::Global => (self.options(), &[]),
        }
    }

    /// How receive was told the level, as the failure names it: `btrfs -q receive`.
    pub fn command(self, placement: Placement) -> String {
        let (global, local) = self.placed(placement);
        ["btrfs"]
            .iter()
            .chain(global)
            .chain(&["receive"])
            .chain(local)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks what a receive of the streams that `commands` counts printed (its stdout and
    /// stderr), with its level set as `placement` says: a line saying what differs, if anything
    /// does.
    pub fn check(
        self,
        placement: Placement,
        printed: &str,
        commands: &Commands,
    ) -> Result<(), String> {
        let lines: Vec<&str> = printed
            .lines()
            .filter(|line| !line.starts_with(CHROOT))
            .collect();
        let reported: Vec<&str> = match self {
            Verbosity::Quiet | Verbosity::Default => Vec::new(),
            Verbosity::Verbose => REPORTED_AT_V.to_vec(),
            Verbosity::Chatty => NAMES
                .iter()
                .filter(|name| !UNREPORTED.contains(name))
                .copied()
                .collect(),
        };
        let words: Vec<String> = reported.iter().map(|name| format!("{name} ")).collect();
        let mut expected: Vec<(&str, usize)> = Vec::new();
        if self != Verbosity::Quiet {
            expected.push(("At subvol ", commands.count_of("subvol")));
            expected.push(("At snapshot ", commands.count_of("snapshot")));
        }
        if matches!(self, Verbosity::Verbose | Verbosity::Chatty) {
            expected.push(("receiving subvol ", commands.count_of("subvol")));
            expected.push(("receiving snapshot ", commands.count_of("snapshot")));
            expected.push(("BTRFS_IOC_SET_RECEIVED_SUBVOL ", commands.subvolumes()));
        }
        for (name, word) in reported.iter().zip(&words) {
            expected.push((word, commands.count_of(name)));
        }
        let counted = |prefix: &str| {
            lines
                .iter()
                .filter(|line| line.starts_with(prefix) && !line.contains(FALLING_BACK))
                .count()
        };
        let mut wrong = Vec::new();
        for (prefix, count) in &expected {
            let got = counted(prefix);
            if got != *count {
                wrong.push(format!("{got} `{}` lines for {count}", prefix.trim_end()));
            }
        }
        // Receive says it falls back to decompressing only at -vv; how often it does is the
        // kernel's choice, so such lines are not counted.
        let known = |line: &&str| {
            (self == Verbosity::Chatty && line.contains(FALLING_BACK))
                || expected.iter().any(|(p, _)| line.starts_with(p))
        };
        if let Some(other) = lines.iter().find(|line| !known(line)) {
            wrong.push(format!("an unexpected line `{other}`"));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "`{}` printed {}",
                self.command(placement),
                wrong.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(names: &[&str]) -> Commands {
        let mut commands = Commands::default();
        for name in names {
            let number = crate::send_stream::number_of(name).unwrap();
            commands.each[usize::from(number)] += 1;
        }
        commands
    }

    #[test]
    fn each_level_must_print_its_lines_for_the_streams_commands() {
        let sent = commands(&["snapshot", "mkfile", "rename", "write", "utimes", "end"]);
        assert_eq!(
            Verbosity::Quiet.check(Placement::Receive, "", &sent),
            Ok(())
        );
        assert_eq!(
            Verbosity::Quiet.check(Placement::Receive, "Chroot to /x\n", &sent),
            Ok(())
        );
        let quiet = Verbosity::Quiet
            .check(Placement::Receive, "At snapshot s1\n", &sent)
            .unwrap_err();
        assert!(
            quiet.contains("unexpected line `At snapshot s1`"),
            "{quiet}"
        );
        assert_eq!(
            Verbosity::Default.check(Placement::Receive, "At snapshot s1\n", &sent),
            Ok(())
        );
        let missing = Verbosity::Default
            .check(Placement::Receive, "", &sent)
            .unwrap_err();
        assert!(missing.contains("0 `At snapshot` lines for 1"), "{missing}");
        let chatty = "At snapshot s1\n\
                      receiving snapshot s1 uuid=x, ctransid=8 parent_uuid=y, parent_ctransid=7\n\
                      mkfile o258-8-0\n\
                      rename o258-8-0 -> b\n\
                      write b - offset=0 length=2\n\
                      utimes \n\
                      BTRFS_IOC_SET_RECEIVED_SUBVOL uuid=x, stransid=8\n";
        assert_eq!(
            Verbosity::Chatty.check(Placement::Receive, chatty, &sent),
            Ok(())
        );
        // -v reports the subvolume's beginning and end, and the write, not the others.
        let verbose: String = chatty
            .lines()
            .filter(|l| {
                !l.starts_with("mkfile") && !l.starts_with("rename") && !l.starts_with("utimes")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            Verbosity::Verbose.check(Placement::Receive, &verbose, &sent),
            Ok(())
        );
        let err = Verbosity::Verbose
            .check(Placement::Receive, chatty, &sent)
            .unwrap_err();
        assert!(err.contains("unexpected line `mkfile"), "{err}");
        let skipped = chatty.replace("write b - offset=0 length=2\n", "");
        let err = Verbosity::Chatty
            .check(Placement::Receive, &skipped, &sent)
            .unwrap_err();
        assert!(err.contains("0 `write` lines for 1"), "{err}");
        // At the default level the commands are not reported.
        let err = Verbosity::Default
            .check(Placement::Receive, chatty, &sent)
            .unwrap_err();
        assert!(err.contains("unexpected line `receiving snapshot"), "{err}");
        // A refused encoded write's fallback is a line of its own.
        let encoded = commands(&["subvol", "encoded_write"]);
        let fell_back = "At subvol s0\nreceiving subvol s0 uuid=x, stransid=7\n\
                         encoded_write f - offset=0, len=4096, unencoded_offset=0\n\
                         encoded_write f - falling back to decompress and write due to errno 22\n\
                         BTRFS_IOC_SET_RECEIVED_SUBVOL uuid=x, stransid=7\n";
        assert_eq!(
            Verbosity::Chatty.check(Placement::Receive, fell_back, &encoded),
            Ok(())
        );
        // Below -vv receive must not say it.
        let quiet_fallback =
            "encoded_write f - falling back to decompress and write due to errno 22\n";
        let err = Verbosity::Quiet
            .check(Placement::Receive, quiet_fallback, &encoded)
            .unwrap_err();
        assert!(
            err.contains("unexpected line `encoded_write f - falling back"),
            "{err}"
        );
    }

    #[test]
    fn global_options_are_placed_before_receive_and_drawn_apart_from_the_level() {
        assert_eq!(
            Verbosity::Chatty.placed(Placement::Global),
            (&["-vv"][..], &[][..])
        );
        assert_eq!(
            Verbosity::Quiet.placed(Placement::Receive),
            (&[][..], &["-q"][..])
        );
        assert_eq!(
            Verbosity::Quiet.command(Placement::Global),
            "btrfs -q receive"
        );
        assert_eq!(
            Verbosity::Chatty.command(Placement::Receive),
            "btrfs receive -vv"
        );
        assert_eq!(
            Verbosity::Default.command(Placement::Global),
            "btrfs receive"
        );
        let said = Verbosity::Quiet
            .check(Placement::Global, "At subvol s0\n", &Commands::default())
            .unwrap_err();
        assert!(said.starts_with("`btrfs -q receive` printed"), "{said}");
        let mut both = [[0usize; 2]; 4];
        for seed in 0..4000 {
            let level = Verbosity::ALL
                .iter()
                .position(|v| *v == Verbosity::draw(seed))
                .unwrap();
            both[level][(Placement::draw(seed) == Placement::Global) as usize] += 1;
        }
        for (level, counts) in both.iter().enumerate() {
            let all = counts[0] + counts[1];
            assert!(
                counts[1] * 10 > all * 4 && counts[1] * 10 < all * 6,
                "{level}: {counts:?}"
            );
        }
    }

    #[test]
    fn seeds_draw_each_level_about_as_often_as_meant() {
        let mut counts = [0usize; 4];
        for seed in 0..4000 {
            let drawn = Verbosity::draw(seed);
            counts[Verbosity::ALL.iter().position(|v| *v == drawn).unwrap()] += 1;
        }
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
        assert!((380..620).contains(&counts[1]), "{counts:?}");
        assert!((380..620).contains(&counts[2]), "{counts:?}");
        assert!((850..1150).contains(&counts[3]), "{counts:?}");
        assert_eq!(Verbosity::Chatty.options(), ["-vv"]);
    }
}
