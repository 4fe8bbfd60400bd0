//! A send whose stream is read slowly: `btrfs send` writes into a pipe that a thread drains a
//! little at a time, so the send ioctl blocks on the full pipe while it holds its tree blocks.
//! That widens the window of races between send and transaction commits without a kernel
//! change. The reader copies every byte it reads to the stream file, so the stream stays exact.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::exec::{Background, CommandError, CommandLog};

/// How fast the stream is drained: at most `chunk` bytes every `interval`.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub chunk: usize,
    pub interval: Duration,
}

/// A send in progress with a slow reader.
pub struct ThrottledSend {
    send: Option<Background>,
    reader: Option<JoinHandle<std::io::Result<u64>>>,
    stream: PathBuf,
}

impl ThrottledSend {
    pub(crate) fn start(
        send: Background,
        mut pipe: std::process::ChildStdout,
        stream: &Path,
        throttle: Throttle,
    ) -> Result<Self> {
        let mut file =
            File::create(stream).with_context(|| format!("creating {}", stream.display()))?;
        let reader = std::thread::Builder::new()
            .name("sendtest-stream-reader".into())
            .spawn(move || {
                let mut buffer = vec![0u8; throttle.chunk];
                let mut copied = 0u64;
                loop {
                    let n = match pipe.read(&mut buffer) {
                        Ok(0) => return Ok(copied),
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    file.write_all(&buffer[..n])?;
                    copied += n as u64;
                    std::thread::sleep(throttle.interval);
                }
            })?;
        Ok(ThrottledSend {
            send: Some(send),
            reader: Some(reader),
            stream: stream.to_path_buf(),
        })
    }

    /// Whether send is still running.
    pub fn is_running(&mut self) -> bool {
        self.send.as_mut().is_some_and(Background::is_running)
    }

    /// Waits for send and the reader; returns the stream file and how many bytes it holds, or
    /// the send's failure.
    pub fn finish(mut self, log: &CommandLog) -> Result<Result<(PathBuf, u64), CommandError>> {
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
        // Dropping the send kills it, which ends the reader's pipe, so the join cannot hang.
        drop(self.send.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
