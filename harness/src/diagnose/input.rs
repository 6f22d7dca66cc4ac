//! How `diagnose` reads what it is given: a file, a folder or an archive, streamed a line at a
//! time into a [`LineSink`], in memory bounded by the findings rather than by the input.
//!
//! - Only regular files are opened. FIFOs (opening one waits for a writer), sockets, devices
//!   (`/dev/zero` never ends), broken symbolic links, links to folders (which could loop) and
//!   entries that do not read are skipped inside a folder or an archive, and counted
//!   ([`Skips`]); given directly, each is a [`DiagnoseError`].
//! - Containers are recognised by their first bytes wherever they are, whatever their name, in
//!   one place ([`Container`] and [`Reader::open`]): a gzip, bzip2 or xz layer is a decoder over
//!   the stream, a tar or zip archive yields its entries one at a time (a zip is read from its
//!   local headers, as a stream: see [`zip`]). How many may nest is capped ([`Limits::layers`]),
//!   and so is what the decoders may produce for one input ([`Limits::decompressed_bytes`]): a
//!   bomb is read up to the limit, and the limit reported. An xz block whose dictionary needs
//!   more than [`XZ_MEMORY`] is refused before anything is allocated for it.
//! - A line is read up to [`Limits::line_bytes`]; the rest of a longer line is dropped and
//!   counted, never buffered.
//! - What the line reader sees is measured ([`Text`]): NUL bytes, bytes that are neither text
//!   nor UTF-8. It is how `diagnose` says why an input that holds no log line cannot be read as
//!   logs (binary, or text of another kind).

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

mod zip;

/// How much `diagnose` reads before it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Bytes all decoders (gzip, bzip2, xz, a zip's deflate) together may produce for one input
    /// (each layer counts).
    pub decompressed_bytes: u64,
    /// Containers (each gzip, bzip2 or xz layer, each tar or zip archive) that may enclose a log.
    pub layers: usize,
    /// Bytes of a line that are read; the rest of a longer line is dropped.
    pub line_bytes: usize,
}

impl Limits {
    /// 1 GiB: more than a diagnostic logging bundle decompresses to, far less than a bomb.
    pub const DEFAULT_DECOMPRESSED_BYTES: u64 = 1 << 30;
    /// A bundle of gzip'd logs is 3 (gzip, tar, gzip; or zip, gzip); one more for a bundle
    /// wrapped again.
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
    /// A bzip2 stream that does not decompress: read up to the damage, if at all.
    CorruptBzip2,
    /// An xz stream that does not decompress (or whose dictionary exceeds [`XZ_MEMORY`]): read
    /// up to the damage, if at all.
    CorruptXz,
    /// A zip archive that does not read to its end, or a member whose data is damaged: what came
    /// before the damage was read.
    CorruptZip,
    /// A zip member this reader does not decompress: encrypted, or another method than stored
    /// and deflate.
    Unsupported,
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
    /// What the decoders produced, every layer counted.
    pub decompressed_bytes: u64,
    /// What the line reader saw: how much of it was not text.
    pub text: Text,
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

/// What the line reader saw, byte by byte: enough to tell a binary input from text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Text {
    /// Bytes read into lines (line endings, and the dropped rest of over-long lines, not counted).
    pub bytes: u64,
    /// NUL bytes among them: no text log holds one.
    pub nul_bytes: u64,
    /// Bytes that are neither text nor part of a UTF-8 character: control bytes other than tab,
    /// carriage return, form feed and escape (NUL included), and bytes that are not UTF-8.
    pub binary_bytes: u64,
}

impl Text {
    /// Binary: a NUL byte, or more than one byte in ten that is not text. A log with a stray
    /// Latin-1 name or a colour escape stays text.
    pub fn looks_binary(&self) -> bool {
        self.nul_bytes > 0 || self.binary_bytes.saturating_mul(10) > self.bytes
    }

    fn add(&mut self, line: &[u8]) {
        self.bytes += line.len() as u64;
        for chunk in line.utf8_chunks() {
            self.binary_bytes += chunk.invalid().len() as u64;
            for b in chunk.valid().bytes() {
                if b == 0 {
                    self.nul_bytes += 1;
                }
                if (b < 0x20 && !matches!(b, b'\t' | b'\r' | 0x0c | 0x1b)) || b == 0x7f {
                    self.binary_bytes += 1;
                }
            }
        }
    }
}

/// `3000 bytes, 12 NUL, 1500 (50%) neither text nor UTF-8`.
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = (self.binary_bytes * 100).checked_div(self.bytes).unwrap_or(0);
        write!(
            f,
            "{} bytes read, {} NUL, {} ({share}%) neither text nor UTF-8",
            self.bytes, self.nul_bytes, self.binary_bytes
        )
    }
}

/// `1 GiB`, `64 KiB`, `1000 bytes`.
pub fn bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
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

/// The containers `diagnose` opens, recognised by their first bytes. Another format is a
/// variant here, its magic in [`Container::sniff`] and its arm in [`Reader::open`]; everything
/// else (limits, skips, naming, lines) applies to it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// RFC 1952, members concatenated or not.
    Gzip,
    /// bzip2, streams concatenated or not (`pbzip2` writes one per block).
    Bzip2,
    /// The `.xz` format, streams concatenated or not.
    Xz,
    /// POSIX or GNU tar.
    Tar,
    /// PKWARE zip (APPNOTE), read from its local headers.
    Zip,
}

impl Container {
    /// How much of a stream's start tells its format: tar's `ustar` magic ends at byte 262.
    const SNIFF_BYTES: usize = 512;

    fn sniff(head: &[u8]) -> Option<Container> {
        /// `BZh`, the block size `1`..`9`, then a block's magic (the digits of pi) or, for an
        /// empty stream, the end-of-stream magic (those of the square root of pi).
        fn is_bzip2(head: &[u8]) -> bool {
            const BLOCK: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
            const END: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
            head.starts_with(b"BZh")
                && head.get(3).is_some_and(|level| (b'1'..=b'9').contains(level))
                && head.get(4..10).is_some_and(|magic| magic == BLOCK || magic == END)
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Container::Gzip)
        } else if is_bzip2(head) {
            Some(Container::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Container::Xz)
        } else if head.get(257..262) == Some(b"ustar".as_slice()) {
            Some(Container::Tar)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            // A member first, or the end record of an empty archive.
            Some(Container::Zip)
        } else {
            None
        }
    }
}

/// The most an xz block's decoder may hold (its dictionary and some), in bytes: 64 MiB is the
/// dictionary of `xz -9`, the largest preset; a block asking for more is refused as damaged
/// before anything is allocated for it.
pub const XZ_MEMORY: u32 = (64 << 20) + (1 << 20);

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
    Bzip2(io::Error),
    #[error("{0}")]
    Xz(io::Error),
    #[error("{0}")]
    Zip(io::Error),
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
            FaultKind::Bzip2(source) => DiagnoseError::Bzip2 { name: self.name, source },
            FaultKind::Xz(source) => DiagnoseError::Xz { name: self.name, source },
            FaultKind::Zip(source) => DiagnoseError::Zip { name: self.name, source },
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
            FaultKind::Bzip2(e) => (SkipReason::CorruptBzip2, Some(e.to_string())),
            FaultKind::Xz(e) => (SkipReason::CorruptXz, Some(e.to_string())),
            FaultKind::Zip(e) => (SkipReason::CorruptZip, Some(e.to_string())),
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
            Container::Gzip => self.decoded(name, flate2::read::MultiGzDecoder::new(stream), FaultKind::Gzip, layer),
            Container::Bzip2 => self.decoded(name, bzip2::read::MultiBzDecoder::new(stream), FaultKind::Bzip2, layer),
            Container::Xz => {
                let decoder = lzma_rust2::XzReader::new_mem_limit(stream, true, XZ_MEMORY / 1024);
                self.decoded(name, decoder, FaultKind::Xz, layer)
            }
            Container::Tar => self.tar(name, stream, layer),
            Container::Zip => {
                let read = self.zip(name, stream, layer);
                self.reading.decompressed_bytes = self.budget.spent.get();
                read
            }
        }
    }

    /// A compression's one member: the decoded stream, under the same name, its output counted
    /// against the budget.
    fn decoded(
        &mut self,
        name: &str,
        decoder: impl Read,
        kind: fn(io::Error) -> FaultKind,
        layer: usize,
    ) -> Result<(), Fault> {
        let mut decoded =
            Tagged { inner: decoder, layer, name: name.to_string(), kind, budget: Some(self.budget.clone()) };
        let read = self.stream(name, &mut decoded, layer + 1);
        self.reading.decompressed_bytes = self.budget.spent.get();
        read
    }

    /// A zip archive's members, each a member stream named `archive!path`, read in the order
    /// they are stored, from their local headers (see [`zip`]): nothing of the archive is held
    /// but the current member's header. A member this reader does not decompress is skipped and
    /// counted when its size is known; when it is not, the rest of the archive cannot be found.
    fn zip(&mut self, name: &str, stream: &mut dyn Read, layer: usize) -> Result<(), Fault> {
        let zip_fault = |e: io::Error| Fault::of(e, |e| Fault::new(layer, name, FaultKind::Zip(e)));
        let mut input = BufReader::with_capacity(READ_BUFFER, stream);
        // The next header's signature, when a folder without its data descriptor read it.
        let mut signature = None;
        while let Some(header) = zip::LocalHeader::next(&mut input, signature.take()).map_err(zip_fault)? {
            let member = format!("{name}!{}", header.name);
            let method = match header.method() {
                Ok(method) => method,
                Err(unsupported) if header.size_known() => {
                    self.skip(member, SkipReason::Unsupported, Some(unsupported));
                    io::copy(&mut (&mut input).take(header.compressed_size), &mut io::sink()).map_err(zip_fault)?;
                    continue;
                }
                Err(unsupported) => {
                    let why = format!(
                        "'{}': {unsupported}, whose size follows its data: the members after it cannot be found",
                        header.name
                    );
                    return Err(Fault::new(
                        layer,
                        name,
                        FaultKind::Zip(io::Error::new(io::ErrorKind::Unsupported, why)),
                    ));
                }
            };
            if header.is_folder() && header.size_known() {
                io::copy(&mut (&mut input).take(header.compressed_size), &mut io::sink()).map_err(zip_fault)?;
                continue;
            }
            if !header.size_known() && method == zip::Method::Stored {
                if !header.is_folder() {
                    let why = format!(
                        "'{}': stored, its size after its data: the members after it cannot be found",
                        header.name
                    );
                    return Err(Fault::new(
                        layer,
                        name,
                        FaultKind::Zip(io::Error::new(io::ErrorKind::Unsupported, why)),
                    ));
                }
                // A folder's data is empty.
                signature = zip::DataDescriptor::read_after_folder(&mut input, header.zip64).map_err(zip_fault)?;
                continue;
            }
            // Damage within a member whose size is known spoils that member only; without its
            // size, the end of its data is where the next member starts.
            let member_layer = if header.size_known() { layer + 1 } else { layer };
            let budget = (method == zip::Method::Deflate).then(|| self.budget.clone());
            let mut raw = if header.size_known() {
                zip::Raw::Sized((&mut input).take(header.compressed_size))
            } else {
                zip::Raw::Open(&mut input)
            };
            let mut data = Tagged {
                inner: zip::Data::new(&mut raw, method, header.size_known().then_some(header.crc32)),
                layer: member_layer,
                name: member.clone(),
                kind: FaultKind::Zip,
                budget,
            };
            let read = if header.is_folder() { Ok(()) } else { self.stream(&member, &mut data, layer + 1) };
            let read = match read {
                Ok(()) => Ok(()),
                // The member is broken, not the archive: on to the next one.
                Err(fault) if fault.layer > layer && !matches!(fault.kind, FaultKind::Limit) => {
                    self.skip_fault(fault);
                    Ok(())
                }
                Err(fault) => Err(fault),
            };
            read?;
            if header.size_known() {
                drop(data);
                io::copy(&mut raw, &mut io::sink()).map_err(zip_fault)?;
            } else {
                // Its data ends where its compressed stream does: decoded to the end, within the
                // budget, then the data descriptor read and checked.
                io::copy(&mut data, &mut io::sink()).map_err(zip_fault)?;
                let crc32 = data.inner.crc32();
                drop(data);
                zip::DataDescriptor::read(&mut input, header.zip64, crc32).map_err(zip_fault)?;
            }
        }
        Ok(())
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
            self.reading.text.add(&self.line);
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
        assert_eq!(Container::sniff(b"BZh91AY&SY\x00"), Some(Container::Bzip2));
        assert_eq!(Container::sniff(b"BZh9\x17rE8P\x90"), Some(Container::Bzip2));
        assert_eq!(Container::sniff(b"BZh9 is not a compressed log"), None);
        assert_eq!(Container::sniff(b"\xfd7zXZ\x00\x00\x04"), Some(Container::Xz));
        assert_eq!(Container::sniff(b"PK\x03\x04\x14\x00"), Some(Container::Zip));
        assert_eq!(Container::sniff(b"PK\x05\x06\x00\x00"), Some(Container::Zip));
        assert_eq!(Container::sniff(b"PKI notes"), None);
    }

    #[test]
    fn text_is_measured_byte_by_byte_and_binary_told_by_nul_or_share() {
        let mut text = Text::default();
        text.add("2022-07-11 vcsc: \u{1b}[31mJos\u{e9}\u{1b}[0m\tok\r".as_bytes());
        assert_eq!((text.nul_bytes, text.binary_bytes), (0, 0));
        text.add(b"Jos\xe9 in Latin-1");
        assert_eq!((text.nul_bytes, text.binary_bytes), (0, 1));
        assert!(!text.looks_binary());
        let mut with_nul = text;
        with_nul.add(b"\x00");
        assert!(with_nul.looks_binary());
        let mut controls = Text::default();
        controls.add(b"\x01\x02\x03\x04abcdefghijklmnop");
        assert!(controls.looks_binary(), "{controls}");
        assert_eq!(controls.to_string(), "20 bytes read, 0 NUL, 4 (20%) neither text nor UTF-8");
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
