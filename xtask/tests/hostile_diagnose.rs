//! `cargo xtask diagnose` on input that is not a log: FIFOs, devices, sockets, broken links,
//! gzip and tar bombs, lines and files far larger than memory should hold. Every run is
//! confined (`confined`: an address-space limit and a kill at the deadline), so a hang or a
//! runaway allocation is a failed test, never a stuck suite or an OOM-killed machine.
//!
//! The bombs are generated from streams into a `TempDir`, never held in memory or kept in the
//! repository. The memory tests assert through the limit: a run under `prlimit --as=100MiB`
//! cannot have had a resident set of 100 MiB or more.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod confined;

/// The address-space limit of the memory tests: the resident set stays below it.
const BOUNDED: u64 = 100 << 20;

/// A gzip'd log with the seed's self-signed warning (and its ERROR line): exit 1 when read.
const SEED_WARNING: &str = "\
2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] WARNING: Core server certificate verification failed for (cucm.steven.lab). Action=Terminate Error=self signed certificate server=cucm.steven.lab(10.48.36.215) depth=0
2022-07-11T18:55:26.016+02:00 vcsc traffic_server[18242]: [ET_NET 0] ERROR: SSL connection failed for 'cucm.steven.lab': error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed
";

/// `xtask diagnose ARGS` under the confined helper's limits (1 GiB address space, 60 s).
fn diagnose(args: &[&str]) -> confined::Ended {
    let mut all = vec!["diagnose"];
    all.extend(args);
    confined::xtask_run(&all, None)
}

/// `xtask diagnose ARGS` under an address-space limit of [`BOUNDED`], killed at the confined
/// helper's deadline.
fn diagnose_bounded(args: &[&str]) -> confined::Ended {
    let mut command = Command::new("prlimit");
    command.arg(format!("--as={BOUNDED}")).arg("--").arg(env!("CARGO_BIN_EXE_xtask")).arg("diagnose").args(args);
    confined::run(command, b"", confined::DEADLINE)
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[track_caller]
fn assert_exit(ended: &confined::Ended, code: i32) {
    assert!(!ended.timed_out, "killed at the deadline: {ended:?}");
    assert!(!ended.panicked(), "panicked or aborted: {ended:?}");
    assert_eq!(ended.code, Some(code), "{ended:?}");
}

/// The `--json` summary: the last line of stderr.
#[track_caller]
fn summary(ended: &confined::Ended) -> serde_json::Value {
    let last = ended.stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON summary on stderr ({e}): {ended:?}"))
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn folder_with_a_log() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let logs = temp.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    std::fs::write(logs.join("traffic_server.log"), SEED_WARNING).expect("write");
    (temp, logs)
}

// ---- what is not a regular file ----

#[test]
fn a_fifo_given_directly_exits_2_without_waiting_for_a_writer() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let fifo = temp.path().join("traffic_server.log");
    mkfifo(&fifo);
    let ended = diagnose(&[arg(&fifo)]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("traffic_server.log") && ended.stderr.contains("FIFO"), "{ended:?}");
}

#[test]
fn a_fifo_in_a_folder_is_skipped_and_counted_and_the_log_beside_it_read() {
    let (_temp, logs) = folder_with_a_log();
    mkfifo(&logs.join("pipe"));
    let ended = diagnose(&[arg(&logs)]);
    assert_exit(&ended, 1);
    assert!(ended.stdout.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{ended:?}");
    assert!(ended.stderr.contains("1 entry skipped: 1 fifo"), "{ended:?}");
    assert!(ended.stderr.contains("pipe: fifo"), "{ended:?}");

    let ended = diagnose(&[arg(&logs), "--json"]);
    assert_exit(&ended, 1);
    let summary = summary(&ended);
    assert_eq!(summary["files"], 1, "{summary}");
    assert_eq!(summary["skipped"]["count"], 1, "{summary}");
    assert_eq!(summary["skipped"]["by_reason"]["fifo"], 1, "{summary}");
    assert!(summary["skipped"]["entries"][0]["name"].as_str().is_some_and(|n| n.ends_with("pipe")), "{summary}");
}

#[test]
fn a_folder_holding_only_a_fifo_exits_2_as_nothing_readable_is_left() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    mkfifo(&temp.path().join("pipe"));
    let ended = diagnose(&[arg(temp.path())]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("nothing readable") && ended.stderr.contains("1 fifo"), "{ended:?}");
}

#[test]
fn an_empty_folder_exits_2_as_nothing_readable_is_left() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let ended = diagnose(&[arg(temp.path())]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("nothing readable"), "{ended:?}");
}

#[test]
fn dev_zero_given_directly_exits_2_without_reading_it() {
    let ended = diagnose(&["/dev/zero"]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("/dev/zero") && ended.stderr.contains("device"), "{ended:?}");
}

#[test]
fn a_link_to_dev_zero_in_a_folder_is_skipped_as_a_device() {
    let (_temp, logs) = folder_with_a_log();
    std::os::unix::fs::symlink("/dev/zero", logs.join("zero.log")).expect("symlink");
    let ended = diagnose(&[arg(&logs)]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("1 entry skipped: 1 device"), "{ended:?}");
}

#[test]
fn a_socket_in_a_folder_is_skipped() {
    let (_temp, logs) = folder_with_a_log();
    let _listener = std::os::unix::net::UnixListener::bind(logs.join("syslog.sock")).expect("bind");
    let ended = diagnose(&[arg(&logs)]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("1 entry skipped: 1 socket"), "{ended:?}");
}

#[test]
fn a_broken_symlink_in_a_folder_is_skipped_and_counted() {
    let (_temp, logs) = folder_with_a_log();
    std::os::unix::fs::symlink(logs.join("rotated-away.log"), logs.join("current.log")).expect("symlink");
    let ended = diagnose(&[arg(&logs)]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("1 entry skipped: 1 broken-symlink"), "{ended:?}");
    assert!(ended.stderr.contains("current.log: broken-symlink"), "{ended:?}");
}

#[test]
fn a_broken_symlink_given_directly_exits_2() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let link = temp.path().join("current.log");
    std::os::unix::fs::symlink(temp.path().join("rotated-away.log"), &link).expect("symlink");
    let ended = diagnose(&[arg(&link)]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("current.log"), "{ended:?}");
}

#[test]
fn a_corrupt_gzip_in_a_folder_is_skipped_and_the_rest_read() {
    let (_temp, logs) = folder_with_a_log();
    std::fs::write(logs.join("traffic_server.log.1.gz"), [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad]).expect("write");
    let ended = diagnose(&[arg(&logs)]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("1 entry skipped: 1 corrupt-gzip"), "{ended:?}");
}

// ---- bombs ----

/// Streams `layers` gzip layers around `content` into `out`.
fn gzip_layers(out: &mut dyn Write, layers: usize, content: &mut dyn Read) -> std::io::Result<()> {
    if layers == 0 {
        std::io::copy(content, out)?;
        return Ok(());
    }
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    gzip_layers(&mut encoder, layers - 1, content)?;
    encoder.try_finish()
}

fn write_gzip(path: &Path, layers: usize, content: &mut dyn Read) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    gzip_layers(&mut file, layers, content).expect("gzip");
    file.flush().expect("flush");
}

/// 2 GiB of zeros, gzip'd (2 MiB), written once for every test that wants it: a gzip member of
/// 1 MiB of zeros, 2048 times over, as `cat` of gzip files makes (and every gzip reader reads
/// as one stream). Compressing 2 GiB in one member costs half a minute; this costs nothing.
fn zero_bomb() -> &'static Path {
    static BOMB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BOMB
        .get_or_init(|| {
            let mut member = Vec::new();
            gzip_layers(&mut member, 1, &mut std::io::repeat(0).take(1 << 20)).expect("gzip");
            let temp = tempfile::TempDir::new().expect("temp dir");
            let path = temp.path().join("traffic_server.log.gz");
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
            let size = member.len() as u64 * 2048;
            std::io::copy(&mut Cycle { pattern: member, at: 0 }.take(size), &mut file).expect("write");
            file.flush().expect("flush");
            (temp, path)
        })
        .1
}

/// A reader repeating `pattern` forever.
struct Cycle {
    pattern: Vec<u8>,
    at: usize,
}

impl Read for Cycle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let take = (self.pattern.len() - self.at).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&self.pattern[self.at..self.at + take]);
            (n, self.at) = (n + take, (self.at + take) % self.pattern.len());
        }
        Ok(n)
    }
}

#[test]
fn a_2_gib_gzip_bomb_of_zeros_is_read_in_under_100_mib_up_to_the_decompression_limit() {
    let bomb = zero_bomb();
    let ended = diagnose_bounded(&[arg(bomb)]);
    // Zeros are no log: exit 2, never a clean bill of health; how far it was read is noted.
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("decompression limit of 1 GiB reached"), "{ended:?}");
    assert!(ended.stderr.contains("1 over-long line"), "{ended:?}");
    assert!(ended.stderr.contains("cannot be read as logs: it looks binary"), "{ended:?}");
}

#[test]
fn a_double_gzip_bomb_of_a_few_kib_is_read_in_under_100_mib() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let bomb = temp.path().join("traffic_server.log.gz.gz");
    write_gzip(&bomb, 1, &mut std::fs::File::open(zero_bomb()).expect("open"));
    let size = std::fs::metadata(&bomb).expect("stat").len();
    eprintln!("the double gzip bomb: {size} bytes");
    assert!(size < 64 << 10, "{size} bytes");
    let ended = diagnose_bounded(&[arg(&bomb)]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("decompression limit of 1 GiB reached"), "{ended:?}");
    assert!(ended.stderr.contains("cannot be read as logs"), "{ended:?}");
}

/// A tar holding `members` (name, size, content), streamed.
fn tar_stream(members: Vec<(String, u64, Box<dyn Read>)>) -> impl Read {
    let mut parts: Vec<Box<dyn Read>> = Vec::new();
    for (name, size, content) in members {
        let mut header = tar::Header::new_gnu();
        header.set_path(&name).expect("short name");
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        parts.push(Box::new(std::io::Cursor::new(header.as_bytes().to_vec())));
        parts.push(Box::new(content.take(size)));
        parts.push(Box::new(std::io::repeat(0).take((512 - size % 512) % 512)));
    }
    parts.push(Box::new(std::io::repeat(0).take(1024)));
    parts.into_iter().fold(Box::new(std::io::empty()) as Box<dyn Read>, |all, part| Box::new(all.chain(part)))
}

#[test]
fn a_nested_tar_gz_gz_bomb_is_read_in_under_100_mib() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let bundle = temp.path().join("diagnostic_log.tar.gz.gz");
    let size = std::fs::metadata(zero_bomb()).expect("stat").len();
    let member: Box<dyn Read> = Box::new(std::fs::File::open(zero_bomb()).expect("open"));
    let seed: Box<dyn Read> = Box::new(SEED_WARNING.as_bytes());
    let mut tar = tar_stream(vec![
        ("traffic_server.log".to_string(), SEED_WARNING.len() as u64, seed),
        ("traffic_server.log.1.gz".to_string(), size, member),
    ]);
    write_gzip(&bundle, 2, &mut tar);
    let ended = diagnose_bounded(&[arg(&bundle)]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("decompression limit of 1 GiB reached"), "{ended:?}");
}

#[test]
fn a_tar_member_claiming_a_900_mib_long_name_is_refused_in_under_100_mib() {
    // A GNU long-name header ('L') whose "name" is 900 MiB (of zeros: a sparse file, no disk
    // used): a reader that buffers names whole holds it all.
    let temp = tempfile::TempDir::new().expect("temp dir");
    let bundle = temp.path().join("diagnostic_log.tar");
    let name_size: u64 = 900 << 20;
    let mut long_name = tar::Header::new_gnu();
    long_name.set_path("././@LongLink").expect("name");
    long_name.set_entry_type(tar::EntryType::GNULongName);
    long_name.set_size(name_size);
    long_name.set_cksum();
    let mut file = std::fs::File::create(&bundle).expect("create");
    file.write_all(long_name.as_bytes()).expect("write");
    file.set_len(512 + name_size).expect("sparse name");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).expect("seek");
    let seed: Box<dyn Read> = Box::new(SEED_WARNING.as_bytes());
    std::io::copy(&mut tar_stream(vec![("x.log".to_string(), SEED_WARNING.len() as u64, seed)]), &mut file)
        .expect("write");
    drop(file);
    let ended = diagnose_bounded(&[arg(&bundle)]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("is not a valid tar archive: a GNU long name of more than 64 KiB"), "{ended:?}");
}

#[test]
fn long_names_links_and_special_entries_in_a_bundle_are_named_or_counted() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let bundle = temp.path().join("diagnostic_log.tar.gz");
    let long = format!("var/log/{}/traffic_server.log", "traffic_server".repeat(10));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(SEED_WARNING.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, &long, SEED_WARNING.as_bytes()).expect("long name");
    for (name, kind) in [("var/log/current", tar::EntryType::Symlink), ("var/run/pipe", tar::EntryType::Fifo)] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(0);
        builder.append_link(&mut header, name, "traffic_server.log").expect("special entry");
    }
    let tar = builder.into_inner().expect("tar");
    write_gzip(&bundle, 1, &mut tar.as_slice());
    let ended = diagnose(&[arg(&bundle), "--json"]);
    assert_exit(&ended, 1);
    assert!(ended.stdout.contains(&format!("diagnostic_log.tar.gz!{long}:1")), "{ended:?}");
    let summary = summary(&ended);
    assert_eq!(summary["skipped"]["by_reason"], serde_json::json!({"fifo": 1, "link": 1}), "{summary}");
}

#[test]
fn two_hundred_mib_of_log_lines_are_streamed_in_under_100_mib() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let log = temp.path().join("traffic_server.log");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&log).expect("create"));
    std::io::copy(&mut Cycle { pattern: SEED_WARNING.as_bytes().to_vec(), at: 0 }.take(200 << 20), &mut file)
        .expect("write");
    file.flush().expect("flush");
    drop(file);
    let ended = diagnose_bounded(&[arg(&log)]);
    assert_exit(&ended, 1);
    assert!(ended.stdout.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{ended:?}");
}

#[test]
fn a_200_mib_line_is_truncated_and_counted_never_buffered_whole() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let log = temp.path().join("traffic_server.log");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&log).expect("create"));
    std::io::copy(&mut std::io::repeat(b'x').take(200 << 20), &mut file).expect("write");
    file.write_all(b"\n").expect("write");
    file.write_all(SEED_WARNING.as_bytes()).expect("write");
    file.flush().expect("flush");
    drop(file);
    let ended = diagnose_bounded(&[arg(&log)]);
    assert_exit(&ended, 1);
    assert!(ended.stdout.contains("read 1 file(s), 3 line(s)"), "{ended:?}");
    assert!(ended.stderr.contains("1 over-long line truncated"), "{ended:?}");
    // The finding's line number counts the over-long line.
    let ended = diagnose_bounded(&[arg(&log), "--json"]);
    assert!(ended.stdout.contains("traffic_server.log:2"), "{ended:?}");
    assert_eq!(summary(&ended)["truncated_lines"], 1);
}

// ---- the limits ----

#[test]
fn the_decompression_limit_is_a_setting_and_is_reported_when_hit() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let log = temp.path().join("traffic_server.log.gz");
    // The warning first, then 64 MiB of lines that are not.
    let mut content = SEED_WARNING.as_bytes().chain(
        Cycle { pattern: b"2022-07-11T18:55:26.016+02:00 vcsc kernel: nothing\n".to_vec(), at: 0 }.take(64 << 20),
    );
    write_gzip(&log, 1, &mut content);
    let ended = diagnose(&[arg(&log), "--max-decompressed", "1MiB"]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("decompression limit of 1 MiB reached"), "{ended:?}");
    assert!(ended.stderr.contains("traffic_server.log.gz"), "{ended:?}");
    let ended = diagnose(&[arg(&log), "--max-decompressed", "1MiB", "--json"]);
    assert_exit(&ended, 1);
    let summary = summary(&ended);
    assert_eq!(summary["limits"]["decompressed_bytes"], 1 << 20, "{summary}");
    assert_eq!(summary["limit_reached"], true, "{summary}");
}

#[test]
fn archives_nested_deeper_than_the_limit_are_skipped_with_a_note() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let gzip_n = |n: usize| {
        let mut out = Vec::new();
        gzip_layers(&mut out, n, &mut SEED_WARNING.as_bytes()).expect("gzip");
        out
    };
    // gzip, tar, then 2 more gzip layers: 4 containers, the limit. 3 more: 5, one too deep.
    let (deep, deeper) = (gzip_n(2), gzip_n(3));
    let bundle = temp.path().join("diagnostic_log.tar.gz");
    let mut tar = tar_stream(vec![
        ("deep.log.gz.gz".to_string(), deep.len() as u64, Box::new(std::io::Cursor::new(deep)) as Box<dyn Read>),
        ("deeper.log.gz.gz.gz".to_string(), deeper.len() as u64, Box::new(std::io::Cursor::new(deeper))),
    ]);
    write_gzip(&bundle, 1, &mut tar);
    let ended = diagnose(&[arg(&bundle), "--json"]);
    assert_exit(&ended, 1);
    let summary = summary(&ended);
    assert_eq!((summary["files"].as_u64(), summary["skipped"]["by_reason"]["too-deep"].as_u64()), (Some(1), Some(1)));
    assert!(
        summary["skipped"]["entries"][0]["name"].as_str().is_some_and(|n| n.ends_with("!deeper.log.gz.gz.gz")),
        "{summary}"
    );
}

// ---- zip, bzip2 and xz ----

/// `part`, `times` times over, then `tail`, streamed into `path`.
fn write_repeated(path: &Path, head: &[u8], part: &[u8], times: u64, tail: &[u8]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    file.write_all(head).expect("write");
    let size = part.len() as u64 * times;
    std::io::copy(&mut Cycle { pattern: part.to_vec(), at: 0 }.take(size), &mut file).expect("write");
    file.write_all(tail).expect("write");
    file.flush().expect("flush");
}

/// Raw deflate (RFC 1951) of `input`, ending on a byte boundary (a sync flush), or the final
/// empty block (`Finish`).
fn deflate_part(compress: &mut flate2::Compress, input: &[u8], flush: flate2::FlushCompress) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 << 10);
    let mut consumed = 0;
    loop {
        let before = compress.total_in();
        compress.compress_vec(&input[consumed..], &mut out, flush).expect("deflate");
        consumed += (compress.total_in() - before) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(64 << 10);
    }
}

/// A zip's local header and central directory entry for a deflated member.
fn zip_headers(name: &str, crc: u32, compressed: u32, uncompressed: u32, offset: u32) -> (Vec<u8>, Vec<u8>) {
    let common = |out: &mut Vec<u8>| {
        out.extend([20, 0, 0, 0, 8, 0, 0, 0, 0x21, 0]); // version 2.0, no flags, deflate, 1980-01-01
        out.extend(crc.to_le_bytes());
        out.extend(compressed.to_le_bytes());
        out.extend(uncompressed.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra
    };
    let mut local = b"PK\x03\x04".to_vec();
    common(&mut local);
    local.extend(name.as_bytes());
    let mut central = b"PK\x01\x02".to_vec();
    central.extend([20, 3]); // made by: 2.0, Unix
    common(&mut central);
    central.extend([0u8; 8]); // comment length, disk, internal and external attributes (part)
    central.extend([0u8; 2]);
    central.extend(offset.to_le_bytes());
    central.extend(name.as_bytes());
    (local, central)
}

/// A zip of the seed's warning, then a member of 2 GiB of zeros deflated (2 MiB): one deflate
/// block of 1 MiB of zeros repeated, as no deflater would take half a minute to write.
#[test]
fn a_2_gib_zip_bomb_is_read_in_under_100_mib_up_to_the_decompression_limit() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let zeros = vec![0u8; 1 << 20];
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let first = deflate_part(&mut compress, &zeros, flate2::FlushCompress::Sync);
    let again = deflate_part(&mut compress, &zeros, flate2::FlushCompress::Sync);
    let end = deflate_part(&mut compress, &[], flate2::FlushCompress::Finish);
    let times: u64 = 2047;
    let (mut one_mib, mut crc) = (flate2::Crc::new(), flate2::Crc::new());
    one_mib.update(&zeros);
    for _ in 0..=times {
        crc.combine(&one_mib);
    }
    let compressed = first.len() as u64 + again.len() as u64 * times + end.len() as u64;

    let (seed_local, seed_central) = {
        let mut seed_crc = flate2::Crc::new();
        seed_crc.update(SEED_WARNING.as_bytes());
        let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
        let data = deflate_part(&mut c, SEED_WARNING.as_bytes(), flate2::FlushCompress::Finish);
        let (local, central) =
            zip_headers("traffic_server.log", seed_crc.sum(), data.len() as u32, SEED_WARNING.len() as u32, 0);
        ([local, data].concat(), central)
    };
    let (bomb_local, bomb_central) =
        zip_headers("traffic_server.log.1", crc.sum(), compressed as u32, 1 << 31, seed_local.len() as u32);
    let directory_offset = seed_local.len() as u64 + bomb_local.len() as u64 + compressed;
    let mut tail = end;
    let directory = [seed_central, bomb_central].concat();
    tail.extend(&directory);
    tail.extend(b"PK\x05\x06\0\0\0\0\x02\0\x02\0");
    tail.extend((directory.len() as u32).to_le_bytes());
    tail.extend((directory_offset as u32).to_le_bytes());
    tail.extend([0, 0]);
    let bomb = temp.path().join("diagnostic_log.zip");
    write_repeated(&bomb, &[seed_local, bomb_local, first].concat(), &again, times, &tail);
    let size = std::fs::metadata(&bomb).expect("stat").len();
    assert!(size < 4 << 20, "{size} bytes");

    let ended = diagnose_bounded(&[arg(&bomb)]);
    assert_exit(&ended, 1);
    assert!(ended.stdout.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{ended:?}");
    assert!(ended.stderr.contains("decompression limit of 1 GiB reached in '"), "{ended:?}");
    assert!(ended.stderr.contains("diagnostic_log.zip!traffic_server.log.1'"), "{ended:?}");
}

fn bzip2_of(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    encoder.write_all(bytes).expect("bzip2");
    encoder.finish().expect("bzip2")
}

/// The seed's warning bzip2'd, then 2 GiB of zeros: a bzip2 stream of 16 MiB of zeros, 128
/// times over (concatenated streams, as `pbzip2` writes).
#[test]
fn a_2_gib_bzip2_bomb_is_read_in_under_100_mib_up_to_the_decompression_limit() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let part = bzip2_of(&vec![0u8; 16 << 20]);
    let bomb = temp.path().join("traffic_server.log.bz2");
    write_repeated(&bomb, &bzip2_of(SEED_WARNING.as_bytes()), &part, 128, b"");
    let size = std::fs::metadata(&bomb).expect("stat").len();
    eprintln!("the bzip2 bomb: {size} bytes");
    let ended = diagnose_bounded(&[arg(&bomb)]);
    assert_exit(&ended, 1);
    assert!(ended.stdout.contains("cucm.steven.lab (10.48.36.215) port ?: self-signed"), "{ended:?}");
    assert!(ended.stderr.contains("decompression limit of 1 GiB reached"), "{ended:?}");
}

fn xz_of(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).expect("xz");
    encoder.write_all(bytes).expect("xz");
    encoder.finish().expect("xz")
}

/// The same with xz streams (preset 6: an 8 MiB dictionary).
#[test]
fn a_2_gib_xz_bomb_is_read_in_under_100_mib_up_to_the_decompression_limit() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let part = xz_of(&vec![0u8; 16 << 20]);
    let bomb = temp.path().join("traffic_server.log.xz");
    write_repeated(&bomb, &xz_of(SEED_WARNING.as_bytes()), &part, 128, b"");
    let ended = diagnose_bounded(&[arg(&bomb)]);
    assert_exit(&ended, 1);
    assert!(ended.stderr.contains("decompression limit of 1 GiB reached"), "{ended:?}");
}

#[test]
fn an_xz_block_asking_for_a_4_gib_dictionary_is_refused_before_it_is_allocated() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let mut xz = xz_of(SEED_WARNING.as_bytes());
    // Stream header (12 bytes), then the block header: size, flags, filter id 0x21 (LZMA2),
    // properties size 1, the dictionary byte, padding, CRC-32 of the header.
    assert_eq!(&xz[12 + 2..12 + 4], &[0x21, 0x01], "an LZMA2 block header");
    xz[12 + 4] = 40; // 4 GiB - 1
    let header_len = (usize::from(xz[12]) + 1) * 4;
    let crc = {
        let mut crc = flate2::Crc::new();
        crc.update(&xz[12..12 + header_len - 4]);
        crc.sum()
    };
    xz[12 + header_len - 4..12 + header_len].copy_from_slice(&crc.to_le_bytes());
    let path = temp.path().join("traffic_server.log.xz");
    std::fs::write(&path, xz).expect("write");
    let ended = diagnose_bounded(&[arg(&path)]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("is not a valid xz file: needed memory too big"), "{ended:?}");
}

/// A zip holding a zip holding a zip ... six deep, the seed's warning at the bottom.
#[test]
fn zips_nested_deeper_than_the_limit_are_skipped_with_a_note() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let mut content = SEED_WARNING.as_bytes().to_vec();
    let mut name = "traffic_server.log".to_string();
    for depth in 0..6 {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).expect("member");
        writer.write_all(&content).expect("write");
        content = writer.finish().expect("zip").into_inner();
        name = format!("level{depth}.zip");
    }
    let bundle = temp.path().join("nested.zip");
    std::fs::write(&bundle, content).expect("write");
    let ended = diagnose(&[arg(&bundle), "--json"]);
    assert_exit(&ended, 2);
    assert!(ended.stderr.contains("nothing readable") && ended.stderr.contains("1 too-deep"), "{ended:?}");
}

#[test]
fn a_stored_zip_member_whose_size_follows_its_data_stops_the_archive_there_with_exit_2() {
    let temp = tempfile::TempDir::new().expect("temp dir");
    let mut writer = zip::ZipWriter::new_stream(Vec::new());
    writer
        .start_file(
            "traffic_server.log",
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
        )
        .expect("member");
    writer.write_all(SEED_WARNING.as_bytes()).expect("write");
    let path = temp.path().join("streamed.zip");
    std::fs::write(&path, writer.finish().expect("zip").into_inner()).expect("write");
    let ended = diagnose(&[arg(&path)]);
    assert_exit(&ended, 2);
    assert!(
        ended.stderr.contains("is not a readable zip archive: 'traffic_server.log': stored, its size after its data"),
        "{ended:?}"
    );
}
