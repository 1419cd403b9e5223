//! MIME sniffer (canary.md §6, with §16.7 fixed): byte prefixes, OOXML recognised by the zip
//! *entry names* (`word/document.xml`, `xl/workbook.xml`, read from the central directory with
//! the `zip` crate, nothing inflated) and not only by raw bytes, case-insensitive HTML
//! doctype, then a text heuristic on the first 1024 bytes.

pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The MIME type of an upload (`bytes` = the whole upload, `filename` = its display name).
pub fn sniff(bytes: &[u8], filename: &str) -> &'static str {
    let head = &bytes[..bytes.len().min(1024)];
    const PREFIXES: [(&[u8], &str); 6] = [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"<?xml", "application/xml"),
    ];
    if let Some((_, m)) = PREFIXES.iter().find(|(p, _)| head.starts_with(p)) {
        return m;
    }
    let lower_start: Vec<u8> = head.iter().take(16).map(u8::to_ascii_lowercase).collect();
    if lower_start.starts_with(b"<!doctype html") || lower_start.starts_with(b"<html") {
        return "text/html";
    }
    if head.starts_with(b"PK\x03\x04") {
        return sniff_zip(bytes, head);
    }
    let text_like = std::str::from_utf8(head).is_ok()
        && head
            .iter()
            .take(128)
            .all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || b >= 0x20);
    if text_like {
        let f = filename.to_ascii_lowercase();
        return if f.ends_with(".json") {
            "application/json"
        } else if f.ends_with(".yaml") || f.ends_with(".yml") {
            "application/yaml"
        } else if f.ends_with(".toml") {
            "application/toml"
        } else {
            "text/plain"
        };
    }
    "application/octet-stream"
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn sniff_zip(bytes: &[u8], head: &[u8]) -> &'static str {
    if let Ok(z) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        let mut names = z.file_names();
        let (mut word, mut xl) = (false, false);
        for n in names.by_ref().take(super::ooxml::MAX_MEMBERS) {
            let Ok(n) = n else { continue };
            word |= n == "word/document.xml";
            xl |= n == "xl/workbook.xml";
        }
        if word {
            return DOCX;
        }
        if xl {
            return XLSX;
        }
    }
    if contains(head, b"wordprocessingml") {
        DOCX
    } else if contains(head, b"spreadsheetml") {
        XLSX
    } else {
        "application/zip"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::canary::ooxml::write_zip;

    #[test]
    fn prefixes_and_text() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nxxxx", "a"), "image/png");
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0", "a"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a..", "a"), "image/gif");
        assert_eq!(sniff(b"%PDF-1.7", "a"), "application/pdf");
        assert_eq!(sniff(b"<!DOCTYPE html><html>", "a"), "text/html");
        assert_eq!(sniff(b"<!doctype html>", "a"), "text/html");
        assert_eq!(sniff(b"<HTML>", "a"), "text/html");
        assert_eq!(sniff(b"<?xml version", "a.svg"), "application/xml");
        assert_eq!(sniff(b"{\"a\":1}", "x.JSON"), "application/json");
        assert_eq!(sniff(b"a: 1", "x.yml"), "application/yaml");
        assert_eq!(sniff(b"a = 1", "x.toml"), "application/toml");
        assert_eq!(sniff(b"hello\n", "x"), "text/plain");
        assert_eq!(sniff(b"\x00\x01\x02", "x"), "application/octet-stream");
        assert_eq!(sniff(b"\xff\xfe", "x"), "application/octet-stream");
    }

    #[test]
    fn office_by_entry_names_even_when_deflated() {
        // deflated members: the marker words are not in the raw bytes
        let docx = write_zip(&[
            ("[Content_Types].xml".into(), vec![b' '; 4000]),
            ("word/document.xml".into(), b"<w:document/>".to_vec()),
        ])
        .unwrap();
        assert_eq!(sniff(&docx, "r.docx"), DOCX);
        let xlsx = write_zip(&[
            ("[Content_Types].xml".into(), vec![b' '; 4000]),
            ("xl/workbook.xml".into(), b"<workbook/>".to_vec()),
        ])
        .unwrap();
        assert_eq!(sniff(&xlsx, "r.xlsx"), XLSX);
        let other = write_zip(&[("a.txt".into(), b"x".to_vec())]).unwrap();
        assert_eq!(sniff(&other, "a.zip"), "application/zip");
        assert_eq!(sniff(b"PK\x03\x04garbage", "a.zip"), "application/zip");
    }
}
