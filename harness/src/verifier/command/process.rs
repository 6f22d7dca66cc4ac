//! The command as a process: its pipes read and written by threads of their own (answer lines
//! and stderr bounded), its process group ended whole, and the scratch folder its session's PEM
//! files live in.

use super::*;

/// What the stdout reader hands over, in order; it stops after anything but a line.
#[derive(Debug)]
pub(super) enum Line {
    /// One line, without its line end.
    Text(String),
    /// A line longer than the cap: how it starts.
    TooLong { start: String },
    /// Reading failed (or the line was not UTF-8).
    Failed(io::Error),
}

/// Reads `stdout` line by line, never holding more than `max` bytes of a line, until the end,
/// an error, a line over the cap, or nobody listening.
pub(super) fn read_lines(stdout: ChildStdout, max: usize, tx: &Sender<Line>) {
    let mut reader = BufReader::with_capacity(CHUNK, stdout);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Line::Failed(e));
                return;
            }
        };
        if buf.is_empty() {
            // The end: a last line without a newline still counts, as with `BufRead::lines`.
            if !line.is_empty() {
                let _ = tx.send(text_of(line));
            }
            return;
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(buf.len());
        if line.len() + take > max {
            // Enough bytes for the characters a fault shows.
            let mut start = line;
            start.truncate(SHOWN * 4);
            start.extend_from_slice(&buf[..take.min(SHOWN * 4 - start.len())]);
            let _ = tx.send(Line::TooLong { start: String::from_utf8_lossy(&start).chars().take(SHOWN).collect() });
            return;
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take + usize::from(newline.is_some()));
        if newline.is_some() {
            let read = text_of(std::mem::take(&mut line));
            let failed = matches!(read, Line::Failed(_));
            if tx.send(read).is_err() || failed {
                return;
            }
        }
    }
}

/// A line read, without its `\r`, if any; not UTF-8 is a read error.
pub(super) fn text_of(mut line: Vec<u8>) -> Line {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    match String::from_utf8(line) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::Failed(io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")),
    }
}

/// The end of a command's stderr: at most `kept` bytes shown, and how many came before them.
#[derive(Debug)]
pub(super) struct StderrTail {
    kept: usize,
    /// The last bytes read; up to twice `kept`, so that trimming is amortised.
    bytes: Vec<u8>,
    total: u64,
}

impl StderrTail {
    pub(super) fn new(kept: usize) -> StderrTail {
        StderrTail { kept, bytes: Vec::new(), total: 0 }
    }

    pub(super) fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(self.kept)..];
        if self.bytes.len() + chunk.len() > 2 * self.kept {
            let keep_from = (self.bytes.len() + chunk.len()).saturating_sub(self.kept).min(self.bytes.len());
            self.bytes.drain(..keep_from);
        }
        self.bytes.extend_from_slice(chunk);
    }

    /// The kept bytes as text, after a note of how many were dropped, or `(empty)`.
    pub(super) fn text(&self) -> String {
        let mut shown = &self.bytes[self.bytes.len().saturating_sub(self.kept)..];
        if (shown.len() as u64) < self.total {
            // Do not start in the middle of a character.
            let continuation = shown.iter().take(3).take_while(|&&b| b & 0xC0 == 0x80).count();
            shown = &shown[continuation..];
        }
        let dropped = self.total - shown.len() as u64;
        let text = String::from_utf8_lossy(shown);
        let text = text.trim_end();
        match (dropped, text.is_empty()) {
            (0, true) => "(empty)".into(),
            (0, false) => text.into(),
            (n, _) => format!("[{n} earlier bytes dropped]\n{text}"),
        }
    }
}

/// Reads `stderr` into `tail` until the end.
pub(super) fn read_stderr(mut stderr: ChildStderr, tail: &Mutex<StderrTail>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => tail.lock().unwrap_or_else(|p| p.into_inner()).push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes `lines` to the command's stdin on a thread of its own and reports each write, so
/// that a command that stops reading its stdin blocks that thread, never the harness. Ends
/// (closing stdin) when `lines` closes or a write fails.
pub(super) fn write_lines(mut stdin: ChildStdin, lines: &Receiver<String>, written: &Sender<io::Result<()>>) {
    for line in lines {
        let result = stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush());
        let failed = result.is_err();
        if written.send(result).is_err() || failed {
            return;
        }
    }
}

/// Why a line could not be written to a command.
#[derive(Debug)]
pub(super) enum Unwritten {
    /// The write failed: the command closed its stdin, most likely by exiting.
    Failed(io::Error),
    /// The write did not finish within the timeout: the command is not reading its stdin.
    Blocked,
}

/// A running command: the leader of its own process group.
#[derive(Debug)]
pub(super) struct Running {
    child: Child,
    /// The command's pid, which is also its process group's id.
    pid: Pid,
    /// The group, registered for a signal handler to kill until [`Running::end`] has.
    group: Option<crate::cleanup::Registered>,
    /// Lines for the writer thread; dropping it closes the command's stdin.
    stdin: Option<Sender<String>>,
    written: Receiver<io::Result<()>>,
    pub(super) lines: Receiver<Line>,
    stderr: Arc<Mutex<StderrTail>>,
    /// Disconnected once the stderr reader has read to the end.
    stderr_open: Receiver<()>,
}

impl Running {
    pub(super) fn spawn(path: &Path, limits: &CommandLimits) -> Result<Running, CommandError> {
        let mut child = Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| CommandError::Start { path: path.to_path_buf(), source })?;
        let pid = Pid::from_child(&child);
        let (Some(stdout), Some(stderr), Some(stdin)) = (child.stdout.take(), child.stderr.take(), child.stdin.take())
        else {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            let _ = child.wait();
            return Err(CommandError::NoPipes);
        };
        let (to_write, lines_to_write) = channel();
        let (report, written) = channel();
        std::thread::spawn(move || write_lines(stdin, &lines_to_write, &report));
        let (tx, lines) = channel();
        let max = limits.max_answer_line;
        std::thread::spawn(move || read_lines(stdout, max, &tx));
        let tail = Arc::new(Mutex::new(StderrTail::new(limits.stderr_kept)));
        let sink = Arc::clone(&tail);
        let (open, stderr_open) = channel::<()>();
        std::thread::spawn(move || {
            read_stderr(stderr, &sink);
            drop(open);
        });
        let group = Some(crate::cleanup::process_group(pid));
        Ok(Running { child, pid, group, stdin: Some(to_write), written, lines, stderr: tail, stderr_open })
    }

    /// Writes `line`, waiting at most `timeout` for the command to take it.
    pub(super) fn write(&self, line: String, timeout: Duration) -> Result<(), Unwritten> {
        let gone = || Unwritten::Failed(io::Error::from(io::ErrorKind::BrokenPipe));
        let stdin = self.stdin.as_ref().ok_or_else(gone)?;
        stdin.send(line).map_err(|_| gone())?;
        match self.written.recv_timeout(timeout) {
            Ok(result) => result.map_err(Unwritten::Failed),
            Err(RecvTimeoutError::Timeout) => Err(Unwritten::Blocked),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    /// How the command ended, if it has; it is not reaped, so its pid and process group id
    /// stay its own until [`Running::end`] has killed the group.
    pub(super) fn exit(&self) -> Option<Exit> {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        let status = rustix::process::waitid(WaitId::Pid(self.pid), options).ok().flatten()?;
        status.exit_status().map(Exit::Code).or(status.terminating_signal().map(Exit::Signal))
    }

    /// Waits up to `grace` for the command to end.
    pub(super) fn exit_within(&self, grace: Duration) -> Option<Exit> {
        let start = Instant::now();
        loop {
            let exit = self.exit();
            if exit.is_some() || start.elapsed() >= grace {
                return exit;
            }
            std::thread::sleep(POLL.min(grace));
        }
    }

    /// The next line, if one comes within `wait`.
    pub(super) fn line_within(&self, wait: Duration) -> Option<Line> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Closes the command's stdin (its cue to exit), gives it `grace` to exit, then kills its
    /// process group (the command and everything it started that stayed in the group) and
    /// reaps it. The group is killed before the command is reaped, so its id cannot have been
    /// reused.
    pub(super) fn end(&mut self, grace: Duration) {
        self.stdin = None;
        let _ = self.exit_within(grace);
        let _ = rustix::process::kill_process_group(self.pid, Signal::KILL);
        self.group = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ends the command ([`Running::end`]) and returns the end of its stderr, read to the end
    /// when that comes within `grace`.
    pub(super) fn finish(mut self, grace: Duration) -> String {
        self.end(grace);
        let _ = self.stderr_open.recv_timeout(grace);
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).text()
    }
}

/// The files a session's PEM material is written to (a folder of the owner's, the key readable
/// by the owner only), kept for the command's lifetime and removed with it.
#[derive(Debug)]
pub(super) struct SessionFiles {
    dir: tempfile::TempDir,
    pub(super) generation: u32,
    /// Removed by a signal handler too (a private key is in it).
    _registered: crate::cleanup::Registered,
}

impl SessionFiles {
    pub(super) fn new() -> Result<SessionFiles, ScratchError> {
        let dir = tempfile::Builder::new()
            .prefix("mralab-cmd-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|source| ScratchError::Folder { source })?;
        let _registered = crate::cleanup::folder(dir.path());
        Ok(SessionFiles { dir, generation: 0, _registered })
    }

    /// Writes `text` to a new file of this generation, readable by its owner only when `private`.
    pub(super) fn write(&self, name: &str, text: &str, private: bool) -> Result<PathBuf, ScratchError> {
        let path = self.dir.path().join(format!("{}-{name}", self.generation));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if private {
            options.mode(0o600);
        }
        options
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|source| ScratchError::Write { path: path.clone(), source })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_keeps_the_last_bytes_and_counts_the_rest() {
        let mut tail = StderrTail::new(4);
        assert_eq!(tail.text(), "(empty)");
        tail.push(b"ab");
        assert_eq!(tail.text(), "ab");
        for chunk in [&b"cdef"[..], b"g", b"hijklmnop", b"q"] {
            tail.push(chunk);
            assert!(tail.bytes.len() <= 8, "at most twice what is kept is held");
        }
        assert_eq!(tail.text(), "[13 earlier bytes dropped]\nnopq");
    }

    #[test]
    fn the_stderr_tail_does_not_start_inside_a_character() {
        let mut tail = StderrTail::new(4);
        tail.push("aé€".as_bytes());
        assert_eq!(tail.text(), "[3 earlier bytes dropped]\n€");
    }
}
