//! OOXML helpers shared by the DOCX generator and the DOCX/XLSX instrumenters (§9.4–§9.5):
//! relationship-id allocation, the external image relationship, the invisible linked drawing,
//! and zip reading/rewriting through the `zip` crate with an inflation cap (zip bombs are a
//! rejection).

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::{CanaryError, MAX_INFLATED_BYTES};

/// Most members an uploaded archive may have.
pub const MAX_MEMBERS: usize = 10_000;

const IMAGE_REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image";

/// `[Content_Types].xml` and `_rels/.rels` of a minimal DOCX.
pub const DOCX_MIME_PARTS: (&str, &str) = (
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>",
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>",
);

fn rej(s: impl Into<String>) -> CanaryError {
    CanaryError::Rejected(s.into())
}

/// First free `rId900`…`rId9998` in a relationships part.
pub fn allocate_rid(rels: &str) -> Result<String, CanaryError> {
    let mut taken = std::collections::HashSet::new();
    for quote in ["Id=\"rId", "Id='rId"] {
        let mut rest = rels;
        while let Some(i) = rest.find(quote) {
            rest = &rest[i + quote.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u32>() {
                taken.insert(n);
            }
        }
    }
    (900..=9998)
        .find(|n| !taken.contains(n))
        .map(|n| format!("rId{n}"))
        .ok_or_else(|| rej("no free relationship id (rId900..rId9998 all taken)"))
}

/// Byte index of the last case-insensitive occurrence of `needle` (ASCII), allowing optional
/// whitespace before the closing `>`: `needle` is given without its `>`.
fn find_close_tag(hay: &str, needle: &str) -> Option<usize> {
    let lower = hay.to_ascii_lowercase();
    let n = needle.to_ascii_lowercase();
    let mut found = None;
    let mut from = 0;
    while let Some(i) = lower[from..].find(&n) {
        let at = from + i;
        let after = lower[at + n.len()..].trim_start();
        if after.starts_with('>') {
            found = Some(at);
        }
        from = at + n.len();
    }
    found
}

/// Add the external image relationship `rid` → `url` before `</Relationships>`.
pub fn inject_relationship(rels: &str, rid: &str, url: &str) -> Result<String, CanaryError> {
    let at = find_close_tag(rels, "</Relationships")
        .ok_or_else(|| rej("relationships part has no </Relationships>"))?;
    let rel = format!(
        "<Relationship Id=\"{rid}\" Type=\"{IMAGE_REL}\" Target=\"{}\" TargetMode=\"External\"/>",
        quick_xml::escape::escape(url)
    );
    Ok(format!("{}{}{}", &rels[..at], rel, &rels[at..]))
}

/// The 1×1 EMU inline drawing whose blip links (not embeds) `rid`. Namespaces are declared
/// locally so any document body accepts it; nothing in it names the product.
fn drawing(rid: &str) -> String {
    format!(
        "<w:p><w:r><w:drawing><wp:inline xmlns:wp=\"http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing\" distT=\"0\" distB=\"0\" distL=\"0\" distR=\"0\"><wp:extent cx=\"1\" cy=\"1\"/><wp:docPr id=\"9{n}\" name=\"Picture {n}\"/><a:graphic xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\"><a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/picture\"><pic:pic xmlns:pic=\"http://schemas.openxmlformats.org/drawingml/2006/picture\"><pic:nvPicPr><pic:cNvPr id=\"9{n}\" name=\"image{n}.png\"/><pic:cNvPicPr/></pic:nvPicPr><pic:blipFill><a:blip xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\" r:link=\"{rid}\"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill><pic:spPr><a:xfrm><a:off x=\"0\" y=\"0\"/><a:ext cx=\"1\" cy=\"1\"/></a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></pic:spPr></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>",
        n = rid.trim_start_matches("rId")
    )
}

/// Inject the relationship and the drawing (before `</w:body>`): (document, rels).
pub fn inject_docx(
    document: &str,
    rels: &str,
    rid: &str,
    url: &str,
) -> Result<(String, String), CanaryError> {
    let rels = inject_relationship(rels, rid, url)?;
    let at = find_close_tag(document, "</w:body")
        .ok_or_else(|| rej("word/document.xml has no </w:body>"))?;
    // keep a trailing sectPr last when present
    let lower = document[..at].to_ascii_lowercase();
    let at = match lower.rfind("<w:sectpr") {
        Some(s) if !document[s..at].contains("<w:p>") => s,
        _ => at,
    };
    let doc = format!("{}{}{}", &document[..at], drawing(rid), &document[at..]);
    Ok((doc, rels))
}

/// A zip of `parts` (deflated, fixed 1980 timestamps: deterministic).
pub fn write_zip(parts: &[(String, Vec<u8>)]) -> Result<Vec<u8>, CanaryError> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, bytes) in parts {
        w.start_file(name.as_str(), opts)
            .map_err(|e| rej(format!("cannot write zip: {e}")))?;
        w.write_all(bytes)
            .map_err(|e| rej(format!("cannot write zip: {e}")))?;
    }
    Ok(w.finish()
        .map_err(|e| rej(format!("cannot write zip: {e}")))?
        .into_inner())
}

/// An opened upload: the archive and its member names in archive order.
pub struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    pub names: Vec<String>,
}

impl<'a> Archive<'a> {
    /// Open `bytes` as a zip; `what` names the format in the rejection.
    pub fn open(bytes: &'a [u8], what: &str) -> Result<Archive<'a>, CanaryError> {
        let zip =
            ZipArchive::new(Cursor::new(bytes)).map_err(|_| rej(format!("not a valid {what}")))?;
        if zip.len() > MAX_MEMBERS {
            return Err(rej(format!(
                "not a valid {what}: more than {MAX_MEMBERS} members"
            )));
        }
        let names = (0..zip.len())
            .map(|i| {
                zip.name_for_index(i)
                    .and_then(Result::ok)
                    .map(|n| n.into_owned())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Archive { zip, names })
    }

    /// The text of member `name`, inflating at most [`MAX_INFLATED_BYTES`].
    pub fn read_text(&mut self, name: &str) -> Result<String, CanaryError> {
        let mut f = self
            .zip
            .by_name(name)
            .map_err(|_| rej(format!("missing expected member {name}")))?;
        let mut out = Vec::new();
        (&mut f)
            .take(MAX_INFLATED_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| rej(format!("cannot inflate {name}: {e}")))?;
        if out.len() as u64 > MAX_INFLATED_BYTES {
            return Err(rej(format!(
                "member {name} inflates beyond {MAX_INFLATED_BYTES} bytes (zip bomb?)"
            )));
        }
        String::from_utf8(out).map_err(|_| rej(format!("member {name} is not UTF-8 XML")))
    }

    /// Rewrite the archive keeping member order and names: members in `replace` are written
    /// deflated with their new bytes, the others copied raw (never inflated).
    pub fn rewrite(mut self, replace: &[(&str, &str)]) -> Result<Vec<u8>, CanaryError> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        let werr = |e: zip::result::ZipError| rej(format!("cannot rewrite archive: {e}"));
        for i in 0..self.zip.len() {
            let name = self.names[i].clone();
            if let Some((_, text)) = replace.iter().find(|(n, _)| *n == name) {
                w.start_file(name.as_str(), opts).map_err(werr)?;
                w.write_all(text.as_bytes())
                    .map_err(|e| rej(format!("cannot rewrite archive: {e}")))?;
            } else {
                let f = self.zip.by_index_raw(i).map_err(werr)?;
                w.raw_copy_file(f).map_err(werr)?;
            }
        }
        Ok(w.finish().map_err(werr)?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_allocation() {
        assert_eq!(allocate_rid("").unwrap(), "rId900");
        assert_eq!(
            allocate_rid("<R Id=\"rId900\"/><R Id='rId901'/>").unwrap(),
            "rId902"
        );
        let all: String = (900..=9998).map(|n| format!("Id=\"rId{n}\" ")).collect();
        assert!(allocate_rid(&all).is_err());
    }

    #[test]
    fn relationship_and_drawing_injection() {
        let rels = inject_relationship(
            "<Relationships></RELATIONSHIPS >",
            "rId900",
            "http://h/c/s?a&b",
        )
        .unwrap();
        assert!(rels.contains(
            "Target=\"http://h/c/s?a&amp;b\" TargetMode=\"External\"/></RELATIONSHIPS >"
        ));
        assert!(inject_relationship("<x/>", "rId900", "u").is_err());
        let (doc, _) = inject_docx(
            "<w:document><w:body><w:p/><w:sectPr/></w:body></w:document>",
            "<Relationships></Relationships>",
            "rId900",
            "u",
        )
        .unwrap();
        assert!(doc.contains("r:link=\"rId900\""));
        assert!(doc.find("r:link").unwrap() < doc.find("<w:sectPr/>").unwrap());
        assert!(!doc.to_ascii_lowercase().contains("canary"));
        assert!(inject_docx(
            "<w:document/>",
            "<Relationships></Relationships>",
            "rId900",
            "u"
        )
        .is_err());
    }

    #[test]
    fn zip_round_trip_and_bomb() {
        let z = write_zip(&[("a.xml".into(), b"hello".to_vec())]).unwrap();
        let mut a = Archive::open(&z, "DOCX").unwrap();
        assert_eq!(a.names, ["a.xml"]);
        assert_eq!(a.read_text("a.xml").unwrap(), "hello");
        assert!(a.read_text("b.xml").is_err());
        let bomb = write_zip(&[(
            "a.xml".into(),
            vec![b'a'; (MAX_INFLATED_BYTES + 10) as usize],
        )])
        .unwrap();
        assert!(bomb.len() < 1_000_000);
        let mut a = Archive::open(&bomb, "DOCX").unwrap();
        let e = a.read_text("a.xml").unwrap_err();
        assert!(e.to_string().contains("zip bomb"));
        assert!(Archive::open(b"not a zip", "DOCX").is_err());
    }
}
