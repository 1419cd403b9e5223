//! A minimal tar writer for one regular file, used to upload files into containers through
//! the Docker archive API (which preserves the entry's mode and mtime). ustar headers, plus
//! a PAX `path` record when the name does not fit the 100-byte ustar field.

/// Tar block size.
const BLOCK: usize = 512;
/// Largest size representable in the 11 octal digits of a ustar size field.
pub const MAX_TAR_FILE_SIZE: u64 = 0o77_777_777_777;

/// Write `value` as zero-padded octal into `field`, NUL-terminated.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    // Callers guarantee the value fits; keep the low digits if it ever did not.
    let src = &s.as_bytes()[s.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(src);
    field[digits] = 0;
}

fn header(name: &[u8], size: u64, mode: u32, mtime: u64, typeflag: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    put_octal(&mut h[100..108], u64::from(mode & 0o7777));
    put_octal(&mut h[108..116], 0); // uid
    put_octal(&mut h[116..124], 0); // gid
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    // Checksum: sum of all bytes with the checksum field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}");
    h[148..154].copy_from_slice(s.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// One PAX record `"<len> key=value\n"` where `<len>` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// Build a tar archive holding one regular file `name` (a single path component) with the
/// given body, permission bits (`mode & 0o7777`), owner root:root and mtime (Unix seconds).
/// The caller checks `body.len() <= MAX_TAR_FILE_SIZE`.
pub fn single_file_tar(name: &str, body: &[u8], mode: u32, mtime: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4 * BLOCK);
    let size = body.len() as u64;
    if name.len() > 100 {
        let rec = pax_record("path", name.as_bytes());
        out.extend_from_slice(&header(b"PaxHeader", rec.len() as u64, 0o644, mtime, b'x'));
        out.extend_from_slice(&rec);
        pad(&mut out);
    }
    out.extend_from_slice(&header(name.as_bytes(), size, mode, mtime, b'0'));
    out.extend_from_slice(body);
    pad(&mut out);
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn octal_field(f: &[u8]) -> u64 {
        let s: String = f
            .iter()
            .take_while(|&&b| b != 0 && b != b' ')
            .map(|&b| b as char)
            .collect();
        u64::from_str_radix(&s, 8).unwrap()
    }

    #[test]
    fn short_name_layout() {
        let t = single_file_tar("notes.txt", b"hello", 0o644, 1_700_000_000);
        assert_eq!(t.len(), BLOCK * 4); // header, body block, two end blocks
        assert_eq!(&t[..9], b"notes.txt");
        assert_eq!(octal_field(&t[100..108]), 0o644);
        assert_eq!(octal_field(&t[124..136]), 5);
        assert_eq!(octal_field(&t[136..148]), 1_700_000_000);
        assert_eq!(t[156], b'0');
        assert_eq!(&t[257..263], b"ustar\0");
        assert_eq!(&t[BLOCK..BLOCK + 5], b"hello");
        assert!(t[BLOCK * 2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn checksum_is_valid() {
        let t = single_file_tar("x", b"", 0o600, 0);
        let stored = octal_field(&t[148..156]);
        let mut h = t[..BLOCK].to_vec();
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(stored, sum);
    }

    #[test]
    fn mode_is_masked() {
        let t = single_file_tar("x", b"", 0o100_755, 0);
        assert_eq!(octal_field(&t[100..108]), 0o755);
    }

    #[test]
    fn long_name_uses_pax() {
        let name = "n".repeat(200);
        let t = single_file_tar(&name, b"abc", 0o644, 7);
        assert_eq!(t[156], b'x');
        let rec_len = octal_field(&t[124..136]) as usize;
        let rec = &t[BLOCK..BLOCK + rec_len];
        let text = std::str::from_utf8(rec).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rec_len);
        assert_eq!(rest, format!("path={name}\n"));
        assert_eq!(t[BLOCK * 2 + 156], b'0');
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [1, 5, 90, 94, 95, 96, 990, 995, 1000] {
            let rec = pax_record("path", "v".repeat(n).as_bytes());
            let text = std::str::from_utf8(&rec).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), rec.len(), "n={n}");
        }
    }

    /// The host's tar must read our archive back byte for byte.
    #[test]
    fn host_tar_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let long = "L".repeat(150);
        for (name, body) in [("short.txt", &b"body\n"[..]), (long.as_str(), &b"x"[..])] {
            let archive = dir.path().join("a.tar");
            std::fs::write(&archive, single_file_tar(name, body, 0o640, 1_600_000_000)).unwrap();
            let status = std::process::Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
            let p = dir.path().join(name);
            assert_eq!(std::fs::read(&p).unwrap(), body);
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(&p).unwrap();
            assert_eq!(md.mode() & 0o7777, 0o640);
            assert_eq!(md.mtime(), 1_600_000_000);
        }
    }
}
