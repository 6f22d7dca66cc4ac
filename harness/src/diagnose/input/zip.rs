//! A zip archive read as a stream, member after member, from its local headers (PKWARE's
//! APPNOTE, 4.3.7 to 4.3.9): what `diagnose` needs of a `.zip` bundle, in memory bounded by one
//! member's header, wherever the archive is (on disk, or inside a tar or a gzip stream).
//!
//! Why not the central directory: it is at the end, so reading it needs a seekable file, and
//! reading it whole (as the `zip` crate's `ZipArchive` does) costs memory in proportion to what
//! the archive claims to hold. The local headers are enough to read members in order, with one
//! limit: a member whose sizes follow its data (a data descriptor: Java, macOS Archive Utility,
//! any streaming writer) ends where its compressed stream ends, which only a deflate member
//! tells. Such a stored member cannot be read past, and the archive is reported as unreadable
//! from there on. The `zip` crate's stream reader refuses every such member.
//!
//! Supported: stored and deflate members, zip64 sizes, data descriptors after deflate members.
//! Each member's CRC-32 is checked when its data has been read to the end. Encrypted members
//! and other methods (Deflate64, bzip2, LZMA, zstd, xz) are skipped when their size is known.

use std::io::{self, BufRead, Read};

/// A local file header's signature, `PK\x03\x04`.
const LOCAL_HEADER: u32 = 0x0403_4b50;
/// What follows the last member: the central directory (`PK\x01\x02`), the end of central
/// directory record of an empty archive (`PK\x05\x06`), the zip64 one (`PK\x06\x06`), or the
/// archive extra data record of an encrypted central directory (`PK\x06\x08`).
const AFTER_MEMBERS: [u32; 4] = [0x0201_4b50, 0x0605_4b50, 0x0606_4b50, 0x0806_4b50];
/// A data descriptor's optional signature, `PK\x07\x08`.
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
/// General purpose flag bits.
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// The zip64 extended information extra field.
const ZIP64_EXTRA: u16 = 0x0001;

/// How a member's data is compressed, of those this reader decompresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// 0: as is.
    Stored,
    /// 8: raw deflate (RFC 1951).
    Deflate,
}

/// A member's local file header, as far as reading its data goes.
#[derive(Debug, Clone)]
pub(super) struct LocalHeader {
    /// The member's path in the archive (CP 437 names read as UTF-8, lossily).
    pub name: String,
    flags: u16,
    method: u16,
    /// The CRC-32 of its data (0 when a data descriptor follows).
    pub crc32: u32,
    /// The size of its stored data (meaningful when [`LocalHeader::size_known`]).
    pub compressed_size: u64,
    /// It carries a zip64 extra field: its data descriptor holds 8-byte sizes.
    pub zip64: bool,
}

impl LocalHeader {
    /// The next member's header; `None` where the members end (the central directory).
    /// `signature`: its first 4 bytes, when they were read already.
    pub fn next(input: &mut impl Read, signature: Option<u32>) -> io::Result<Option<LocalHeader>> {
        let signature = match signature {
            Some(signature) => signature,
            None => u32::from_le_bytes(read_array(input, "a member or the central directory")?),
        };
        if AFTER_MEMBERS.contains(&signature) {
            return Ok(None);
        }
        if signature != LOCAL_HEADER {
            return Err(invalid(format!("no member header where one should start (found {signature:#010x})")));
        }
        let fixed: [u8; 26] = read_array(input, "a member header")?;
        let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let (flags, method, crc32) = (u16_at(2), u16_at(4), u32_at(10));
        let (compressed, uncompressed) = (u32_at(14), u32_at(18));
        let (name_len, extra_len) = (usize::from(u16_at(22)), usize::from(u16_at(24)));
        // Both at most 64 KiB: the header's own fields bound them.
        let mut name = vec![0u8; name_len];
        input.read_exact(&mut name).map_err(|e| cut(e, "a member name"))?;
        let mut extra = vec![0u8; extra_len];
        input.read_exact(&mut extra).map_err(|e| cut(e, "a member's extra fields"))?;
        let zip64 = zip64_field(&extra);
        let mut compressed_size = u64::from(compressed);
        if let Some(field) = zip64 {
            // In a local header, the 8-byte sizes stand for the 4-byte ones that read 0xFFFFFFFF,
            // uncompressed first.
            let mut sizes = field.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
            if uncompressed == u32::MAX {
                sizes.next();
            }
            if compressed == u32::MAX {
                compressed_size = sizes.next().ok_or_else(|| invalid("a zip64 field without the compressed size"))?;
            }
        } else if compressed == u32::MAX && flags & FLAG_DATA_DESCRIPTOR == 0 {
            return Err(invalid("a member of 4 GiB or more without its zip64 size"));
        }
        // UTF-8 when FLAG_UTF8 is set, CP 437 otherwise: the same for ASCII names, and a name
        // is only shown.
        let name = String::from_utf8_lossy(&name).into_owned();
        Ok(Some(LocalHeader { name, flags, method, crc32, compressed_size, zip64: zip64.is_some() }))
    }

    /// Its sizes are in the header: its data can be skipped without decoding it.
    pub fn size_known(&self) -> bool {
        self.flags & FLAG_DATA_DESCRIPTOR == 0
    }

    /// A folder: a name ending in `/`.
    pub fn is_folder(&self) -> bool {
        self.name.ends_with('/')
    }

    /// How its data is compressed; `Err` says why it cannot be read.
    pub fn method(&self) -> Result<Method, String> {
        if self.flags & FLAG_ENCRYPTED != 0 {
            return Err("encrypted".to_string());
        }
        match self.method {
            0 => Ok(Method::Stored),
            8 => Ok(Method::Deflate),
            other => {
                let known = match other {
                    9 => " (Deflate64)",
                    12 => " (bzip2)",
                    14 => " (LZMA)",
                    93 => " (zstd)",
                    95 => " (xz)",
                    99 => " (AES encrypted)",
                    _ => "",
                };
                Err(format!("compression method {other}{known}, not read"))
            }
        }
    }
}

/// The data of the zip64 extra field, when there is one.
fn zip64_field(mut extra: &[u8]) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let data = extra.get(4..4 + len)?;
        if id == ZIP64_EXTRA {
            return Some(data);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// A member's raw data: its known size of the archive, or the rest of the archive (a member
/// whose size follows its data, read up to the end of its compressed stream).
pub(super) enum Raw<'a, R> {
    /// The next `compressed_size` bytes.
    Sized(io::Take<&'a mut R>),
    /// The archive from here on.
    Open(&'a mut R),
}

impl<R: BufRead> Read for Raw<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Raw::Sized(r) => r.read(buf),
            Raw::Open(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> BufRead for Raw<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Raw::Sized(r) => r.fill_buf(),
            Raw::Open(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Raw::Sized(r) => r.consume(amount),
            Raw::Open(r) => r.consume(amount),
        }
    }
}

/// A member's data, decompressed, its CRC-32 computed on the way.
pub(super) struct Data<R> {
    decoder: Decoder<R>,
    crc: flate2::Crc,
    /// The header's CRC-32, checked at the end of the data; `None` when a data descriptor
    /// brings it (see [`DataDescriptor::read`]).
    expected: Option<u32>,
}

enum Decoder<R> {
    Stored(R),
    /// A `bufread` decoder consumes no byte past the end of its stream: what follows it (a data
    /// descriptor, the next member) is left to read.
    Deflate(flate2::bufread::DeflateDecoder<R>),
}

impl<R: BufRead> Data<R> {
    /// `expected`: the header's CRC-32 when the header holds it.
    pub fn new(raw: R, method: Method, expected: Option<u32>) -> Data<R> {
        let decoder = match method {
            Method::Stored => Decoder::Stored(raw),
            Method::Deflate => Decoder::Deflate(flate2::bufread::DeflateDecoder::new(raw)),
        };
        Data { decoder, crc: flate2::Crc::new(), expected }
    }

    /// The CRC-32 of what was read so far.
    pub fn crc32(&self) -> u32 {
        self.crc.sum()
    }
}

impl<R: BufRead> Read for Data<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.decoder {
            Decoder::Stored(r) => r.read(buf)?,
            Decoder::Deflate(r) => r.read(buf)?,
        };
        self.crc.update(&buf[..n]);
        if n == 0
            && !buf.is_empty()
            && let Some(expected) = self.expected
        {
            check_crc(self.crc.sum(), expected)?;
        }
        Ok(n)
    }
}

/// The sizes and CRC-32 that follow a member's data when its header has none.
pub(super) struct DataDescriptor;

impl DataDescriptor {
    /// Reads it (with or without its signature; 8-byte sizes after a zip64 header) and checks
    /// its CRC-32 against `crc32`, the one of the data read.
    pub fn read(input: &mut impl Read, zip64: bool, crc32: u32) -> io::Result<()> {
        let first = u32::from_le_bytes(read_array(input, "a data descriptor")?);
        let expected = Self::rest(input, first, zip64)?;
        check_crc(crc32, expected)
    }

    /// The descriptor after its first four bytes (`first`: its signature, or its CRC-32 when it
    /// has none): reads the rest and returns the CRC-32 it states.
    fn rest(input: &mut impl Read, first: u32, zip64: bool) -> io::Result<u32> {
        let expected =
            if first == DATA_DESCRIPTOR { u32::from_le_bytes(read_array(input, "a data descriptor")?) } else { first };
        if zip64 {
            read_array::<16>(input, "a data descriptor")?;
        } else {
            read_array::<8>(input, "a data descriptor")?;
        }
        Ok(expected)
    }

    /// A folder's data descriptor, which some writers announce (the `zip` crate's stream
    /// writer) but do not write: `Some(signature)` when what follows the folder's header is
    /// the next header, its signature read.
    pub fn read_after_folder(input: &mut impl Read, zip64: bool) -> io::Result<Option<u32>> {
        let first = u32::from_le_bytes(read_array(input, "a data descriptor")?);
        if first == LOCAL_HEADER || AFTER_MEMBERS.contains(&first) {
            return Ok(Some(first));
        }
        let expected = Self::rest(input, first, zip64)?;
        check_crc(0, expected).map(|()| None)
    }
}

fn check_crc(computed: u32, expected: u32) -> io::Result<()> {
    if computed == expected {
        Ok(())
    } else {
        Err(invalid(format!("damaged data: CRC-32 {computed:08x}, the archive says {expected:08x}")))
    }
}

fn read_array<const N: usize>(input: &mut impl Read, what: &str) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    input.read_exact(&mut bytes).map_err(|e| cut(e, what))?;
    Ok(bytes)
}

/// An early end said in the archive's terms; other errors (an outer fault) as they are.
fn cut(error: io::Error, what: &str) -> io::Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        invalid(format!("the archive ends within {what}"))
    } else {
        error
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip64_local_header_gives_its_8_byte_compressed_size() {
        let mut header = Vec::new();
        header.extend(LOCAL_HEADER.to_le_bytes());
        header.extend([45, 0, 0, 0, 8, 0, 0, 0, 0, 0]); // version, flags, method 8, time, date
        header.extend(0x1234_5678u32.to_le_bytes()); // CRC-32
        header.extend(u32::MAX.to_le_bytes()); // compressed: see zip64
        header.extend(u32::MAX.to_le_bytes()); // uncompressed: see zip64
        header.extend(5u16.to_le_bytes()); // name length
        header.extend(20u16.to_le_bytes()); // extra length
        header.extend(b"a.log");
        header.extend(ZIP64_EXTRA.to_le_bytes());
        header.extend(16u16.to_le_bytes());
        header.extend((6u64 << 30).to_le_bytes()); // uncompressed
        header.extend((5u64 << 30).to_le_bytes()); // compressed
        let read = LocalHeader::next(&mut header.as_slice(), None).expect("reads").expect("a member");
        assert_eq!((read.name.as_str(), read.compressed_size, read.zip64), ("a.log", 5 << 30, true));
        assert_eq!((read.crc32, read.size_known(), read.method()), (0x1234_5678, true, Ok(Method::Deflate)));
    }

    #[test]
    fn the_central_directory_ends_the_members_and_anything_else_is_damage() {
        assert!(LocalHeader::next(&mut b"PK\x01\x02rest".as_slice(), None).expect("reads").is_none());
        assert!(LocalHeader::next(&mut b"PK\x05\x06rest".as_slice(), None).expect("reads").is_none());
        let error = LocalHeader::next(&mut b"GIF89a".as_slice(), None).expect_err("damage");
        assert!(error.to_string().contains("no member header"), "{error}");
        let error = LocalHeader::next(&mut b"PK\x03\x04\x14\x00".as_slice(), None).expect_err("cut");
        assert_eq!(error.to_string(), "the archive ends within a member header");
        let error = LocalHeader::next(&mut b"".as_slice(), None).expect_err("cut");
        assert_eq!(error.to_string(), "the archive ends within a member or the central directory");
    }

    #[test]
    fn a_data_descriptor_reads_with_or_without_its_signature_and_checks_the_crc() {
        let mut with = Vec::new();
        with.extend(DATA_DESCRIPTOR.to_le_bytes());
        with.extend(7u32.to_le_bytes());
        with.extend([0u8; 8]);
        DataDescriptor::read(&mut with.as_slice(), false, 7).expect("signed");
        let mut without = 7u32.to_le_bytes().to_vec();
        without.extend([0u8; 16]);
        let mut input = without.as_slice();
        DataDescriptor::read(&mut input, true, 7).expect("zip64, unsigned");
        assert!(input.is_empty());
        let error = DataDescriptor::read(&mut with.as_slice(), false, 8).expect_err("crc");
        assert_eq!(error.to_string(), "damaged data: CRC-32 00000008, the archive says 00000007");
    }
}
