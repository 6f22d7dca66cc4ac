//! How `diagnose` reads what it is given: a file, a folder or an archive, streamed a line at a
//! time into a [`LineSink`], in memory bounded by the findings rather than by the input.
//!
//! - Only regular files are opened. FIFOs (opening one waits for a writer), sockets, devices
//!   (`/dev/zero` never ends), broken symbolic links, links to folders (which could loop) and
//!   entries that do not read are skipped inside a folder or an archive, and counted
//!   ([`Skips`]); given directly, each is a [`DiagnoseError`].
//! - Containers are recognised by their first bytes wherever they are, whatever their name, in
//!   one place ([`Container`] and [`Reader::open`]): a gzip layer is a decoder over the stream,
//!   a tar archive yields its entries one at a time. How many may nest is capped
//!   ([`Limits::layers`]), and so is what the decoders may produce for one input
//!   ([`Limits::decompressed_bytes`]): a bomb is read up to the limit, and the limit reported.
//! - A line is read up to [`Limits::line_bytes`]; the rest of a longer line is dropped and
//!   counted, never buffered.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead as _, BufReader, Read};
use std::os::unix::fs::FileTypeExt as _;
use std::path::Path;
use std::rc::Rc;

use serde::Serialize;

use super::DiagnoseError;

/// How much `diagnose` reads before it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Bytes all gzip decoders together may produce for one input (each layer counts).
    pub decompressed_bytes: u64,
    /// Containers (each gzip layer, each tar archive) that may enclose a log.
    pub layers: usize,
    /// Bytes of a line that are read; the rest of a longer line is dropped.
    pub line_bytes: usize,
}

impl Limits {
    /// 1 GiB: more than a diagnostic logging bundle decompresses to, far less than a bomb.
    pub const DEFAULT_DECOMPRESSED_BYTES: u64 = 1 << 30;
    /// A bundle of gzip'd logs is 3 (gzip, tar, gzip); one more for a bundle wrapped again.
    pub const DEFAULT_LAYERS: usize = 4;
    /// 64 KiB: a traffic server line with every header of a request is a few KiB.
    pub const DEFAULT_LINE_BYTES: usize = 64 << 10;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            decompressed_bytes: Self::DEFAULT_DECOMPRESSED_BYTES,
            layers: Self::DEFAULT_LAYERS,
            line_bytes: Self::DEFAULT_LINE_BYTES,
        }
    }
}

/// What a path is when it is neither a regular file nor a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device (`/dev/zero`, a terminal).
    CharacterDevice,
    /// A block device (a disk).
    BlockDevice,
    /// Anything else the system reports.
    Other,
}

impl FileKind {
    fn of(file_type: &std::fs::FileType) -> FileKind {
        if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_char_device() {
            FileKind::CharacterDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        }
    }

    fn skip_reason(self) -> SkipReason {
        match self {
            FileKind::Fifo => SkipReason::Fifo,
            FileKind::Socket => SkipReason::Socket,
            FileKind::CharacterDevice | FileKind::BlockDevice => SkipReason::Device,
            FileKind::Other => SkipReason::Special,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::CharacterDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Other => "special file",
        })
    }
}

/// Why an entry of a folder or an archive was not read, or not to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum SkipReason {
    /// A FIFO: opening it waits for a writer, reading it may never end.
    Fifo,
    /// A socket: it does not open as a file.
    Socket,
    /// A character or block device: `/dev/zero` never ends.
    Device,
    /// Another special file; in an archive, a sparse or contiguous file.
    Special,
    /// A hard or symbolic link inside an archive: its data is elsewhere.
    Link,
    /// A symbolic link whose target does not exist, or that loops.
    BrokenSymlink,
    /// A symbolic link to a folder: not followed, as it could loop.
    SymlinkToFolder,
    /// Opening or reading failed (permissions, I/O): read up to the failure, if at all.
    Unreadable,
    /// A gzip stream that does not decompress: read up to the damage, if at all.
    CorruptGzip,
    /// A tar archive that does not read to its end: its entries before the damage were read.
    CorruptTar,
    /// A container inside more than [`Limits::layers`] others.
    TooDeep,
    /// Not decompressed: [`Limits::decompressed_bytes`] was reached before (in
    /// [`Reading::limit_reached_in`], read up to the limit).
    DecompressionLimit,
}

/// One skipped entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The path, or archive path `!` entry path.
    pub name: String,
    /// Why.
    pub reason: SkipReason,
    /// The system's or the decoder's words, when there are any.
    pub detail: Option<String>,
}

/// What was skipped: every entry counted by reason, the first [`Skips::LISTED`] named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skips {
    /// How many entries were skipped.
    pub count: usize,
    /// How many for each reason.
    pub by_reason: BTreeMap<SkipReason, usize>,
    /// The first [`Skips::LISTED`], in reading order.
    pub entries: Vec<Skipped>,
}

impl Skips {
    /// How many skipped entries are named; the rest are only counted.
    pub const LISTED: usize = 100;

    fn add(&mut self, skipped: Skipped) {
        self.count += 1;
        *self.by_reason.entry(skipped.reason).or_default() += 1;
        if self.entries.len() < Self::LISTED {
            self.entries.push(skipped);
        }
    }
}

/// `3 entries skipped: 2 fifo, 1 broken-symlink`.
impl fmt::Display for Skips {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("no entries");
        }
        let noun = if self.count == 1 { "entry" } else { "entries" };
        write!(f, "{} {noun} skipped: ", self.count)?;
        for (i, (reason, n)) in self.by_reason.iter().enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{n} {reason}")?;
        }
        Ok(())
    }
}

/// How the input was read: what was skipped, cut short or dropped, against which limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reading {
    /// Entries of folders and archives that were not read, or not to their end.
    pub skipped: Skips,
    /// Lines longer than [`Limits::line_bytes`], read only up to it.
    pub truncated_lines: usize,
    /// What the gzip decoders produced, every layer counted.
    pub decompressed_bytes: u64,
    /// Whether decompression stopped at [`Limits::decompressed_bytes`].
    pub limit_reached: bool,
    /// The stream being decompressed when it did.
    pub limit_reached_in: Option<String>,
    /// The limits the input was read under.
    pub limits: Limits,
}

impl Reading {
    /// For people: a `note:` line for each thing worth knowing about how the input was read;
    /// empty when all of it was read.
    pub fn notes(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.skipped.count > 0 {
            let _ = writeln!(out, "note: {}", self.skipped);
            for skipped in &self.skipped.entries {
                let detail = skipped.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
                let _ = writeln!(out, "note:   {}: {}{detail}", skipped.name, skipped.reason);
            }
            let unlisted = self.skipped.count - self.skipped.entries.len();
            if unlisted > 0 {
                let _ = writeln!(out, "note:   and {unlisted} more");
            }
        }
        if self.truncated_lines > 0 {
            let (lines, each) = if self.truncated_lines == 1 { ("line", "") } else { ("lines", " each") };
            let _ = writeln!(
                out,
                "note: {} over-long {lines} truncated to {}{each}",
                self.truncated_lines,
                bytes(self.limits.line_bytes as u64)
            );
        }
        if let Some(name) = &self.limit_reached_in {
            let _ = writeln!(
                out,
                "note: decompression limit of {} reached in '{name}': the rest of it, and anything compressed after it, was not read",
                bytes(self.limits.decompressed_bytes)
            );
        }
        out
    }
}

/// `1 GiB`, `64 KiB`, `1000 bytes`.
pub fn bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n % size == 0 {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

/// Why a size does not read ([`parse_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number first.
    #[error("'{0}' is not a size: a number of bytes, or of KiB, MiB or GiB")]
    NotASize(String),
    /// A unit other than bytes, KiB, MiB or GiB.
    #[error("'{text}': unknown unit '{unit}' (KiB, MiB or GiB)")]
    UnknownUnit {
        /// The size as written.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// More than a `u64` holds.
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// A size as people write it: `1073741824`, `1GiB`, `500 MiB`, `64KiB` (units of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| SizeError::NotASize(text.to_string()))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        _ => return Err(SizeError::UnknownUnit { text: text.to_string(), unit: unit.trim().to_string() }),
    };
    number.checked_mul(1 << shift).ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

/// Where the reader delivers what it reads: a `file` call per log, then its lines in order.
pub(super) trait LineSink {
    /// A log starts (`bundle.tar.gz!var/log/traffic_server.log`).
    fn file(&mut self, name: &str);
    /// Its next line, without the line ending (`\n`, `\r\n`); bytes that are not UTF-8 replaced.
    fn line(&mut self, line: &str);
}

/// Reads `path`: a file (plain, or any nesting of containers), or a folder, recursively, in path
/// order. Returns how many logs were read and how.
pub(super) fn read_path(
    path: &Path,
    limits: &Limits,
    sink: &mut dyn LineSink,
) -> Result<(usize, Reading), DiagnoseError> {
    let mut reader = Reader::new(limits, sink);
    let read_error = |source| DiagnoseError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.is_dir() {
        reader.folder(path).map_err(read_error)?;
    } else if meta.is_file() {
        let file = match open_regular(path).map_err(read_error)? {
            Ok(file) => file,
            Err(kind) => return Err(DiagnoseError::NotAFile { path: path.to_path_buf(), kind }),
        };
        match reader.file(path, file) {
            Ok(()) => {}
            Err(fault) if matches!(fault.kind, FaultKind::Limit) => reader.skip_fault(fault),
            Err(fault) => return Err(fault.into_error(path)),
        }
    } else {
        return Err(DiagnoseError::NotAFile { path: path.to_path_buf(), kind: FileKind::of(&meta.file_type()) });
    }
    if reader.files == 0 {
        return Err(DiagnoseError::NothingReadable { path: path.to_path_buf(), skipped: reader.reading.skipped });
    }
    Ok((reader.files, reader.reading))
}

/// Reads `text` as one log: lines only, no container is looked for.
pub(super) fn read_text(name: &str, mut text: &[u8], limits: &Limits, sink: &mut dyn LineSink) -> Reading {
    let mut reader = Reader::new(limits, sink);
    if let Err(fault) = reader.lines(name, &mut text, 0) {
        // A slice does not fail to read; kept total rather than unwrapped.
        reader.skip_fault(fault);
    }
    reader.reading
}

/// The containers `diagnose` opens, recognised by their first bytes. Another format (zip,
/// bzip2, xz) is a variant here, its magic in [`Container::sniff`] and its arm in
/// [`Reader::open`]; everything else (limits, skips, naming, lines) applies to it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// RFC 1952, members concatenated or not.
    Gzip,
    /// POSIX or GNU tar.
    Tar,
}

impl Container {
    /// How much of a stream's start tells its format: tar's `ustar` magic ends at byte 262.
    const SNIFF_BYTES: usize = 512;

    fn sniff(head: &[u8]) -> Option<Container> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Container::Gzip)
        } else if head.get(257..262) == Some(b"ustar".as_slice()) {
            Some(Container::Tar)
        } else {
            None
        }
    }
}

/// The most a tar extension header (a GNU long name, a pax header) may hold: it is read whole.
const EXTENSION_BYTES: u64 = 64 << 10;

/// How large the buffer of the line reader is.
const READ_BUFFER: usize = 64 << 10;

/// Why a stream stopped before its end, and which: `layer` counts the containers around the
/// broken stream (0: the file itself). A fault travels up through `io::Error`s to the reader of
/// the folder or archive that holds the broken stream, which skips it; or to the top.
#[derive(Debug, thiserror::Error)]
#[error("'{name}': {kind}")]
struct Fault {
    layer: usize,
    name: String,
    kind: FaultKind,
}

#[derive(Debug, thiserror::Error)]
enum FaultKind {
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Gzip(io::Error),
    #[error("{0}")]
    Tar(io::Error),
    #[error("containers nested deeper than {0}")]
    TooDeep(usize),
    #[error("decompression limit reached")]
    Limit,
}

impl Fault {
    fn new(layer: usize, name: &str, kind: FaultKind) -> Fault {
        Fault { layer, name: name.to_string(), kind }
    }

    /// The fault an `io::Error` carries, or `otherwise` of it when it carries none.
    fn of(error: io::Error, otherwise: impl FnOnce(io::Error) -> Fault) -> Fault {
        if !error.get_ref().is_some_and(|inner| inner.is::<Fault>()) {
            return otherwise(error);
        }
        match error.into_inner().map(|inner| inner.downcast::<Fault>()) {
            Some(Ok(fault)) => *fault,
            // Checked above; kept total rather than unwrapped.
            Some(Err(inner)) => otherwise(io::Error::other(inner)),
            None => otherwise(io::Error::other("an error without its cause")),
        }
    }

    /// As the error of a path given directly (a limit is no error: see [`read_path`]).
    fn into_error(self, path: &Path) -> DiagnoseError {
        match self.kind {
            FaultKind::Io(source) => DiagnoseError::Read { path: path.to_path_buf(), source },
            FaultKind::Gzip(source) => DiagnoseError::Gzip { name: self.name, source },
            FaultKind::Tar(source) => DiagnoseError::Tar { name: self.name, source },
            FaultKind::TooDeep(layers) => DiagnoseError::TooDeep { name: self.name, layers },
            FaultKind::Limit => DiagnoseError::Read {
                path: path.to_path_buf(),
                source: io::Error::other("decompression limit reached"),
            },
        }
    }
}

/// What the decoders of one input may still produce.
#[derive(Debug)]
struct Budget {
    limit: u64,
    spent: Cell<u64>,
}

/// A source of bytes whose errors leave as [`Fault`]s naming it: the file on disk, or a
/// decoder, whose output is also counted against the [`Budget`].
struct Tagged<R> {
    inner: R,
    /// The layer of the stream whose damage this source's errors mean.
    layer: usize,
    name: String,
    kind: fn(io::Error) -> FaultKind,
    budget: Option<Rc<Budget>>,
}

impl<R: Read> Tagged<R> {
    fn tag(&self, error: io::Error) -> io::Error {
        let carries_fault = error.get_ref().is_some_and(|inner| inner.is::<Fault>());
        if carries_fault || error.kind() == io::ErrorKind::Interrupted {
            return error;
        }
        io::Error::other(Fault::new(self.layer, &self.name, (self.kind)(error)))
    }
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(budget) = self.budget.clone() else {
            return self.inner.read(buf).map_err(|e| self.tag(e));
        };
        let room = budget.limit.saturating_sub(budget.spent.get());
        if room == 0 && !buf.is_empty() {
            // At the limit: only the end of the stream may follow.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe).map_err(|e| self.tag(e))? {
                0 => Ok(0),
                _ => Err(io::Error::other(Fault::new(self.layer, &self.name, FaultKind::Limit))),
            };
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want]).map_err(|e| self.tag(e))?;
        budget.spent.set(budget.spent.get() + n as u64);
        Ok(n)
    }
}

/// Opens a regular file without blocking (a FIFO swapped in after the check does not wait for a
/// writer) and checks what was opened; `Err(kind)` when it is not a regular file.
fn open_regular(path: &Path) -> io::Result<Result<File, FileKind>> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    let meta = file.metadata()?;
    Ok(if meta.is_file() { Ok(file) } else { Err(FileKind::of(&meta.file_type())) })
}

/// Reads one input into a [`LineSink`].
struct Reader<'a> {
    limits: Limits,
    sink: &'a mut dyn LineSink,
    budget: Rc<Budget>,
    reading: Reading,
    /// Logs that reached the line reader.
    files: usize,
    /// The line being read, reused.
    line: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(limits: &Limits, sink: &'a mut dyn LineSink) -> Reader<'a> {
        Reader {
            limits: *limits,
            sink,
            budget: Rc::new(Budget { limit: limits.decompressed_bytes, spent: Cell::new(0) }),
            reading: Reading { limits: *limits, ..Reading::default() },
            files: 0,
            line: Vec::new(),
        }
    }

    fn skip(&mut self, name: String, reason: SkipReason, detail: Option<String>) {
        self.reading.skipped.add(Skipped { name, reason, detail });
    }

    fn skip_fault(&mut self, fault: Fault) {
        let (reason, detail) = match fault.kind {
            FaultKind::Io(e) => (SkipReason::Unreadable, Some(e.to_string())),
            FaultKind::Gzip(e) => (SkipReason::CorruptGzip, Some(e.to_string())),
            FaultKind::Tar(e) => (SkipReason::CorruptTar, Some(e.to_string())),
            FaultKind::TooDeep(layers) => (SkipReason::TooDeep, Some(format!("more than {layers} containers"))),
            FaultKind::Limit => {
                self.reading.limit_reached = true;
                if self.reading.limit_reached_in.is_none() {
                    // Read up to the limit: noted as such, not as a skip.
                    self.reading.limit_reached_in = Some(fault.name);
                    return;
                }
                (SkipReason::DecompressionLimit, None)
            }
        };
        self.skip(fault.name, reason, detail);
    }

    /// The entries of a folder, in path order. `Err` only when the folder itself does not read.
    fn folder(&mut self, folder: &Path) -> io::Result<()> {
        let mut entries: Vec<std::path::PathBuf> =
            std::fs::read_dir(folder)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            self.folder_entry(&entry);
        }
        Ok(())
    }

    fn folder_entry(&mut self, path: &Path) {
        let name = path.display().to_string();
        let is_link = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta.is_symlink(),
            Err(e) => return self.skip(name, SkipReason::Unreadable, Some(e.to_string())),
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if is_link => return self.skip(name, SkipReason::BrokenSymlink, Some(e.to_string())),
            Err(e) => return self.skip(name, SkipReason::Unreadable, Some(e.to_string())),
        };
        if meta.is_dir() {
            if is_link {
                return self.skip(name, SkipReason::SymlinkToFolder, None);
            }
            if let Err(e) = self.folder(path) {
                self.skip(name, SkipReason::Unreadable, Some(e.to_string()));
            }
            return;
        }
        if !meta.is_file() {
            return self.skip(name, FileKind::of(&meta.file_type()).skip_reason(), None);
        }
        match open_regular(path) {
            Err(e) => self.skip(name, SkipReason::Unreadable, Some(e.to_string())),
            Ok(Err(kind)) => self.skip(name, kind.skip_reason(), None),
            Ok(Ok(file)) => {
                if let Err(fault) = self.file(path, file) {
                    self.skip_fault(fault);
                }
            }
        }
    }

    /// A regular file, whatever it holds.
    fn file(&mut self, path: &Path, file: File) -> Result<(), Fault> {
        let name = path.display().to_string();
        let mut source = Tagged { inner: file, layer: 0, name: name.clone(), kind: FaultKind::Io, budget: None };
        self.stream(&name, &mut source, 0)
    }

    /// A stream inside `layer` containers: a container, or a log.
    fn stream(&mut self, name: &str, stream: &mut dyn Read, layer: usize) -> Result<(), Fault> {
        let mut head = Vec::with_capacity(Container::SNIFF_BYTES);
        (&mut *stream)
            .take(Container::SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| Fault::of(e, |e| Fault::new(layer, name, FaultKind::Io(e))))?;
        let mut whole = head.as_slice().chain(stream);
        match Container::sniff(&head) {
            None => self.lines(name, &mut whole, layer),
            Some(_) if layer >= self.limits.layers => {
                Err(Fault::new(layer, name, FaultKind::TooDeep(self.limits.layers)))
            }
            Some(container) => self.open(container, name, &mut whole, layer),
        }
    }

    /// The one place a container is opened and its members read: a compression has one member,
    /// the decoded stream under the same name; an archive one per entry.
    fn open(&mut self, container: Container, name: &str, stream: &mut dyn Read, layer: usize) -> Result<(), Fault> {
        match container {
            Container::Gzip => {
                let mut decoded = Tagged {
                    inner: flate2::read::MultiGzDecoder::new(stream),
                    layer,
                    name: name.to_string(),
                    kind: FaultKind::Gzip,
                    budget: Some(self.budget.clone()),
                };
                let read = self.stream(name, &mut decoded, layer + 1);
                self.reading.decompressed_bytes = self.budget.spent.get();
                read
            }
            Container::Tar => self.tar(name, stream, layer),
        }
    }

    /// A tar archive's regular files, each a member stream named `archive!path`. Entries are read
    /// raw, so that a long-name or pax header is read here, within [`EXTENSION_BYTES`], rather
    /// than buffered whole by the tar crate. Of a pax header only `path` is applied: a pax
    /// `size` (a member over 8 GiB) is not, and such an archive reads as damaged after it.
    fn tar(&mut self, name: &str, stream: &mut dyn Read, layer: usize) -> Result<(), Fault> {
        let tar_fault = |e: io::Error| Fault::of(e, |e| Fault::new(layer, name, FaultKind::Tar(e)));
        let mut archive = tar::Archive::new(stream);
        let entries = archive.entries().map_err(tar_fault)?.raw(true);
        // A GNU long name or a pax `path` names the entry after it.
        let mut long_name: Option<Vec<u8>> = None;
        for entry in entries {
            let mut entry = entry.map_err(tar_fault)?;
            let kind = entry.header().entry_type();
            if kind.is_gnu_longname() {
                long_name = Some(extension(&mut entry, "GNU long name").map_err(tar_fault)?);
                continue;
            }
            if kind.is_pax_local_extensions() {
                let pax = extension(&mut entry, "pax header").map_err(tar_fault)?;
                long_name = pax_path(&pax).or(long_name);
                continue;
            }
            if kind.is_gnu_longlink() || kind.is_pax_global_extensions() {
                continue; // its data is skipped by the iterator, unread
            }
            let path = long_name.take().unwrap_or_else(|| entry.path_bytes().into_owned());
            let end = path.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            let path = String::from_utf8_lossy(&path[..end]).into_owned();
            let member = format!("{name}!{path}");
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                let reason = if kind.is_symlink() || kind.is_hard_link() {
                    SkipReason::Link
                } else if kind.is_fifo() {
                    SkipReason::Fifo
                } else if kind.is_character_special() || kind.is_block_special() {
                    SkipReason::Device
                } else {
                    SkipReason::Special
                };
                self.skip(member, reason, None);
                continue;
            }
            match self.stream(&member, &mut entry, layer + 1) {
                Ok(()) => {}
                // The member is broken, not the archive: on to the next entry.
                Err(fault) if fault.layer > layer && !matches!(fault.kind, FaultKind::Limit) => {
                    self.skip_fault(fault);
                }
                Err(fault) => return Err(fault),
            }
        }
        Ok(())
    }

    /// A log's lines, each up to [`Limits::line_bytes`].
    fn lines(&mut self, name: &str, stream: &mut dyn Read, layer: usize) -> Result<(), Fault> {
        self.files += 1;
        self.sink.file(name);
        let max = self.limits.line_bytes;
        let fault = |e: io::Error| Fault::of(e, |e| Fault::new(layer, name, FaultKind::Io(e)));
        let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
        loop {
            self.line.clear();
            // On a fault, what was read of the line is still a (cut) line.
            let read = (&mut reader).take(max as u64 + 1).read_until(b'\n', &mut self.line);
            if matches!(read, Ok(0)) {
                return Ok(());
            }
            let mut over_long = false;
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
            } else if self.line.len() > max {
                self.line.truncate(max);
                self.reading.truncated_lines += 1;
                over_long = true;
            }
            if !self.line.is_empty() || read.is_ok() {
                let text = String::from_utf8_lossy(&self.line);
                self.sink.line(text.trim_end_matches('\r'));
            }
            read.map_err(fault)?;
            if over_long {
                reader.skip_until(b'\n').map_err(fault)?;
            }
        }
    }
}

/// A tar extension header's data, read whole when it is small enough.
fn extension(entry: &mut impl Read, what: &str) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    entry.take(EXTENSION_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > EXTENSION_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {what} of more than {}", bytes(EXTENSION_BYTES)),
        ));
    }
    Ok(data)
}

/// The `path` record of a pax header.
fn pax_path(pax: &[u8]) -> Option<Vec<u8>> {
    tar::PaxExtensions::new(pax)
        .filter_map(Result::ok)
        .filter(|record| record.key() == Ok("path"))
        .last()
        .map(|record| record.value_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them_and_print_back() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes(" 500 mib "), Ok(500 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("GiB"), Err(SizeError::NotASize("GiB".into())));
        assert_eq!(parse_bytes("1GB"), Err(SizeError::UnknownUnit { text: "1GB".into(), unit: "GB".into() }));
        assert_eq!(parse_bytes("18446744073709551615GiB"), Err(SizeError::TooLarge("18446744073709551615GiB".into())));
        assert_eq!(
            (bytes(1 << 30), bytes(3 << 20), bytes(64 << 10), bytes(1000)),
            ("1 GiB".to_string(), "3 MiB".to_string(), "64 KiB".to_string(), "1000 bytes".to_string())
        );
    }

    #[test]
    fn containers_are_recognised_by_their_first_bytes_only() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(Container::sniff(&[0x1f, 0x8b, 0x08]), Some(Container::Gzip));
        assert_eq!(Container::sniff(&tar), Some(Container::Tar));
        assert_eq!(Container::sniff(&tar[..261]), None);
        assert_eq!(Container::sniff(b"2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]:"), None);
    }

    #[test]
    fn skips_count_every_entry_and_name_the_first_hundred() {
        let mut skips = Skips::default();
        for i in 0..150 {
            let reason = if i % 3 == 0 { SkipReason::BrokenSymlink } else { SkipReason::Fifo };
            skips.add(Skipped { name: format!("e{i}"), reason, detail: None });
        }
        assert_eq!((skips.count, skips.entries.len()), (150, Skips::LISTED));
        assert_eq!(skips.to_string(), "150 entries skipped: 100 fifo, 50 broken-symlink");
        assert_eq!(Skips::default().to_string(), "no entries");
    }
}
