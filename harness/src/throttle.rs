//! A send whose stream is read slowly: `btrfs send` writes into a pipe that a thread drains a
//! little at a time, so the send ioctl blocks on the full pipe while it holds its tree blocks.
//! That widens the window of races between send and transaction commits without a kernel
//! change. The reader copies every byte it reads to the stream file, so the stream stays exact.
//!
//! The reader drains by the clock ([`Pace::Interval`]) or by the rounds of the loop that races
//! the send ([`Pace::Rounds`]). A race that needs a number of commits while send holds its blocks
//! wants the second: on a loaded machine, or a guest under TCG sharing its host, a loop does
//! fewer rounds per second, and a send drained by the clock ends before enough of them.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::exec::{Background, CommandError, CommandLog};

/// How fast the stream is drained: at most `chunk` bytes at each step of `pace`.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub chunk: usize,
    pub pace: Pace,
}

/// When the reader takes its next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// After this much time.
    Interval(Duration),
    /// After the racing loop has done this many rounds ([`ThrottledSend::round`]); once the
    /// loop stops counting (the send is finished or dropped), without waiting.
    Rounds(u32),
}

/// A send in progress with a slow reader.
pub struct ThrottledSend {
    send: Option<Background>,
    reader: Option<JoinHandle<std::io::Result<u64>>>,
    /// Rounds of the racing loop, for a reader paced by them; `None` once no more will come.
    rounds: Option<Sender<()>>,
    stream: PathBuf,
}

impl ThrottledSend {
    pub(crate) fn start(
        send: Background,
        mut pipe: std::process::ChildStdout,
        stream: &Path,
        throttle: Throttle,
    ) -> Result<Self> {
        let file =
            File::create(stream).with_context(|| format!("creating {}", stream.display()))?;
        let (rounds, counted) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("sendtest-stream-reader".into())
            .spawn(move || drain(&mut pipe, file, throttle, &counted))?;
        Ok(ThrottledSend {
            send: Some(send),
            reader: Some(reader),
            rounds: Some(rounds),
            stream: stream.to_path_buf(),
        })
    }

    /// Counts one round of the loop racing the send, for a reader paced by rounds.
    pub fn round(&self) {
        if let Some(rounds) = &self.rounds {
            // The reader is gone only once the stream has ended: nothing left to pace.
            let _ = rounds.send(());
        }
    }

    /// Whether send is still running.
    pub fn is_running(&mut self) -> bool {
        self.send.as_mut().is_some_and(Background::is_running)
    }

    /// Waits for send and the reader; returns the stream file and how many bytes it holds, or
    /// the send's failure.
    pub fn finish(mut self, log: &CommandLog) -> Result<Result<(PathBuf, u64), CommandError>> {
        // No more rounds: a reader paced by them drains the rest at once.
        drop(self.rounds.take());
        let reader = self.reader.take().expect("finish runs once");
        let send = self.send.take().expect("finish runs once").wait(log);
        let copied = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the stream reader panicked"))?
            .context("copying the send stream")?;
        Ok(send.map(|_| (self.stream.clone(), copied)))
    }
}

impl Drop for ThrottledSend {
    fn drop(&mut self) {
        // Dropping the send kills it, which ends the reader's pipe, and no more rounds let a
        // paced reader go on, so the join cannot hang.
        drop(self.rounds.take());
        drop(self.send.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The reader: copies `pipe` to `file` a chunk at a time, waiting as `throttle` says after each.
/// Returns how many bytes it copied.
fn drain(
    pipe: &mut impl Read,
    mut file: impl Write,
    throttle: Throttle,
    rounds: &Receiver<()>,
) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; throttle.chunk];
    let mut copied = 0u64;
    // Once the loop stops counting rounds, the rest is read without waiting.
    let mut counting = true;
    loop {
        let n = match pipe.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        file.write_all(&buffer[..n])?;
        copied += n as u64;
        match throttle.pace {
            Pace::Interval(interval) => std::thread::sleep(interval),
            Pace::Rounds(wanted) => {
                for _ in 0..wanted {
                    if !counting || rounds.recv().is_err() {
                        counting = false;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// A file whose contents the test can see while the reader writes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
        fn wait_for(&self, len: usize) {
            let start = Instant::now();
            while self.len() < len {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the reader stopped short"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn stream(chunks: usize) -> Vec<u8> {
        (0..chunks * 4).map(|i| i as u8).collect()
    }

    #[test]
    fn a_reader_paced_by_rounds_takes_a_chunk_per_so_many_rounds() {
        let input = stream(4);
        let file = Shared::default();
        let (rounds, counted) = mpsc::channel();
        let throttle = Throttle {
            chunk: 4,
            pace: Pace::Rounds(3),
        };
        let (mut pipe, out) = (Cursor::new(input.clone()), file.clone());
        let reader = std::thread::spawn(move || drain(&mut pipe, out, throttle, &counted));
        file.wait_for(4);
        rounds.send(()).unwrap();
        rounds.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            file.len(),
            4,
            "two rounds of three must not free the next chunk"
        );
        rounds.send(()).unwrap();
        file.wait_for(8);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(file.len(), 8, "three rounds free one chunk, not more");
        // The loop is done: the rest comes at once.
        drop(rounds);
        assert_eq!(reader.join().unwrap().unwrap(), 16);
        assert_eq!(*file.0.lock().unwrap(), input);
    }

    #[test]
    fn a_reader_paced_by_the_clock_copies_the_stream_exactly() {
        let input = stream(5);
        let file = Shared::default();
        let (_rounds, counted) = mpsc::channel();
        let throttle = Throttle {
            chunk: 4,
            pace: Pace::Interval(Duration::from_millis(1)),
        };
        let copied = drain(
            &mut Cursor::new(input.clone()),
            file.clone(),
            throttle,
            &counted,
        );
        assert_eq!(copied.unwrap(), 20);
        assert_eq!(*file.0.lock().unwrap(), input);
    }
}
