//! Instrumenters (canary.md §9): put the callback into an operator upload. Unsafe or
//! unparseable input is a [`CanaryError::Rejected`] with the reason.

use super::ooxml::{allocate_rid, inject_docx, inject_relationship, Archive};
use super::{Artifact, CanaryError, Context, DAY};

fn rej(s: impl Into<String>) -> CanaryError {
    CanaryError::Rejected(s.into())
}

fn artifact(name: &str, path: &str, content: Vec<u8>, days: i64, note: String) -> Artifact {
    Artifact {
        path: path.to_owned(),
        content,
        mode: 0o644,
        mtime_offset: -days * DAY,
        generator: None,
        instrumenter: Some(name.to_owned()),
        notes: vec![note],
        fingerprint_nonce: None,
    }
}

/// Run the instrumenter `name` (§6 registry).
pub fn instrument(
    name: &str,
    blob: &[u8],
    ctx: &Context,
    path: &str,
) -> Result<Artifact, CanaryError> {
    match name {
        "passthrough" => Ok(artifact(
            name,
            path,
            blob.to_vec(),
            7,
            "bytes unchanged (the slug travels in the placement only)".into(),
        )),
        "plain" => Ok(plain(blob, ctx, path)),
        "html" => Ok(html(blob, ctx, path)),
        "docx" => docx(blob, ctx, path),
        "xlsx" => xlsx(blob, ctx, path),
        "pdf" => pdf(blob, ctx, path),
        "image" => image(blob, ctx, path),
        other => Err(CanaryError::UnknownInstrumenter(other.to_owned())),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// §9.2: placeholders, else an appended comment line.
pub fn plain(blob: &[u8], ctx: &Context, path: &str) -> Artifact {
    let url = ctx.url();
    let mut out = blob.to_vec();
    let mut replaced = false;
    if contains(&out, b"{{CANARY_URL}}") {
        out = replace_all(&out, b"{{CANARY_URL}}", url.as_bytes());
        replaced = true;
    }
    if let Some(host) = ctx.dns_host() {
        if contains(&out, b"{{CANARY_HOST}}") {
            out = replace_all(&out, b"{{CANARY_HOST}}", host.as_bytes());
            replaced = true;
        }
    }
    if replaced {
        return artifact("plain", path, out, 7, "placeholders replaced".into());
    }
    let head = &blob[..blob.len().min(512)];
    let prefix =
        if contains(head, b"[default]") || contains(head, b"[section]") || contains(head, b"\n[") {
            "; "
        } else if [&b"//"[..], b"function ", b"const ", b"let ", b"var "]
            .iter()
            .any(|n| contains(head, n))
        {
            "// "
        } else {
            "# "
        };
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n{prefix}see {url} for the latest version\n").as_bytes());
    artifact(
        "plain",
        path,
        out,
        7,
        format!("comment line ({prefix}) names {url}"),
    )
}

/// §9.3: a hidden 1×1 image before the first `</body>` (case-insensitive), else appended.
pub fn html(blob: &[u8], ctx: &Context, path: &str) -> Artifact {
    let url = quick_xml::escape::escape(ctx.url()).into_owned();
    let tag =
        format!("<img src=\"{url}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">\n");
    let lower = blob.to_ascii_lowercase();
    let mut at = None;
    let mut i = 0;
    while let Some(pos) = lower[i..].windows(6).position(|w| w == b"</body") {
        let start = i + pos;
        let rest = &lower[start + 6..];
        let ws = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
        if rest.get(ws) == Some(&b'>') {
            at = Some(start);
            break;
        }
        i = start + 6;
    }
    let mut out = Vec::with_capacity(blob.len() + tag.len() + 1);
    match at {
        Some(p) => {
            out.extend_from_slice(&blob[..p]);
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(&blob[p..]);
        }
        None => {
            out.extend_from_slice(blob);
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(tag.as_bytes());
        }
    }
    artifact(
        "html",
        path,
        out,
        7,
        format!("hidden image loads {}", ctx.url()),
    )
}

/// §9.4: external image relationship + linked inline drawing.
pub fn docx(blob: &[u8], ctx: &Context, path: &str) -> Result<Artifact, CanaryError> {
    const RELS: &str = "word/_rels/document.xml.rels";
    const DOC: &str = "word/document.xml";
    let mut a = Archive::open(blob, "DOCX")?;
    for m in [RELS, DOC] {
        if !a.names.iter().any(|n| n == m) {
            return Err(rej(format!("missing expected member {m}")));
        }
    }
    let rels = a.read_text(RELS)?;
    let doc = a.read_text(DOC)?;
    let rid = allocate_rid(&rels)?;
    let (doc, rels) = inject_docx(&doc, &rels, &rid, &ctx.url())?;
    let out = a.rewrite(&[(DOC, &doc), (RELS, &rels)])?;
    Ok(artifact(
        "docx",
        path,
        out,
        14,
        format!("external image {rid} → {}", ctx.url()),
    ))
}

/// §9.5: external image relationship in the workbook (or shared strings) rels.
pub fn xlsx(blob: &[u8], ctx: &Context, path: &str) -> Result<Artifact, CanaryError> {
    let mut a = Archive::open(blob, "XLSX zip")?;
    let Some(target) = a
        .names
        .iter()
        .find(|n| *n == "xl/_rels/workbook.xml.rels" || *n == "xl/_rels/sharedStrings.xml.rels")
        .cloned()
    else {
        return Err(rej("no workbook relationships"));
    };
    let rels = a.read_text(&target)?;
    let rid = allocate_rid(&rels)?;
    let rels = inject_relationship(&rels, &rid, &ctx.url())?;
    let out = a.rewrite(&[(target.as_str(), &rels)])?;
    Ok(artifact(
        "xlsx",
        path,
        out,
        14,
        format!("external relationship {rid} → {}", ctx.url()),
    ))
}

/// §9.6: set the catalog `/OpenAction` to the URI action (lopdf).
pub fn pdf(blob: &[u8], ctx: &Context, path: &str) -> Result<Artifact, CanaryError> {
    use lopdf::{dictionary, Document, Object};
    let mut doc = Document::load_mem(blob).map_err(|e| rej(format!("not a usable PDF: {e}")))?;
    if doc.is_encrypted() {
        return Err(rej("encrypted PDF"));
    }
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| rej("PDF has no catalog"))?;
    let cat = doc
        .get_object_mut(root)
        .and_then(Object::as_dict_mut)
        .map_err(|_| rej("PDF catalog is not a dictionary"))?;
    cat.set(
        "OpenAction",
        dictionary! { "S" => "URI", "URI" => Object::string_literal(ctx.url()) },
    );
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| rej(format!("cannot write PDF: {e}")))?;
    Ok(artifact(
        "pdf",
        path,
        out,
        14,
        format!("/OpenAction URI {}", ctx.url()),
    ))
}

/// Largest decoded image accepted (pixels × bytes per pixel).
const MAX_IMAGE_BYTES: usize = 64 * 1024 * 1024;

/// §9.7: PNG re-encoded with a `Comment` text chunk (png crate); JPEG gains a COM segment
/// after SOI; GIF is returned unchanged. The reference's `X-Canary` key is not written
/// (§16.15: it named the mechanism).
pub fn image(blob: &[u8], ctx: &Context, path: &str) -> Result<Artifact, CanaryError> {
    let url = ctx.url();
    let comment = format!("reference: {url}");
    let out = if blob.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_with_comment(blob, &comment)?
    } else if blob.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let len = comment.len() + 2;
        if len > 0xFFFF {
            return Err(rej("comment too long for a JPEG segment"));
        }
        let mut out = Vec::with_capacity(blob.len() + len + 2);
        out.extend_from_slice(&blob[..2]);
        out.extend_from_slice(&[0xFF, 0xFE, (len >> 8) as u8, (len & 0xFF) as u8]);
        out.extend_from_slice(comment.as_bytes());
        out.extend_from_slice(&blob[2..]);
        out
    } else if blob.starts_with(b"GIF87a") || blob.starts_with(b"GIF89a") {
        blob.to_vec()
    } else {
        return Err(rej("unsupported image format"));
    };
    Ok(artifact(
        "image",
        path,
        out,
        30,
        format!("image comment names {url}"),
    ))
}

fn png_with_comment(blob: &[u8], comment: &str) -> Result<Vec<u8>, CanaryError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(blob));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| rej(format!("not a valid PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .filter(|s| *s <= MAX_IMAGE_BYTES)
        .ok_or_else(|| rej("PNG too large"))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| rej(format!("not a valid PNG: {e}")))?;
    let src = reader.info();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, info.width, info.height);
        enc.set_color(info.color_type);
        enc.set_depth(info.bit_depth);
        if let Some(p) = &src.palette {
            enc.set_palette(p.to_vec());
        }
        if let Some(t) = &src.trns {
            enc.set_trns(t.to_vec());
        }
        enc.add_text_chunk("Comment".to_owned(), comment.to_owned())
            .map_err(|e| rej(format!("cannot write PNG: {e}")))?;
        let mut w = enc
            .write_header()
            .map_err(|e| rej(format!("cannot write PNG: {e}")))?;
        w.write_image_data(&buf[..info.buffer_size()])
            .map_err(|e| rej(format!("cannot write PNG: {e}")))?;
        w.finish()
            .map_err(|e| rej(format!("cannot write PNG: {e}")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::new(
            "slugslugslugslugslugslugsl",
            "https://cb.example",
            "z.example",
            "linux",
        )
    }
    const URL: &str = "https://cb.example/c/slugslugslugslugslugslugsl";

    #[test]
    fn passthrough_identity() {
        let a = instrument("passthrough", b"\x00\x01bin", &ctx(), "/x").unwrap();
        assert_eq!(a.content, b"\x00\x01bin");
        assert_eq!(a.path, "/x");
        assert_eq!(a.mode, 0o644);
    }

    #[test]
    fn plain_rules() {
        let a = plain(b"u={{CANARY_URL}} h={{CANARY_HOST}}", &ctx(), "/x");
        assert_eq!(
            String::from_utf8(a.content).unwrap(),
            format!("u={URL} h=slugslugslugslugslugslugsl.z.example")
        );
        for (input, prefix) in [
            (&b"[default]\nk=v"[..], "; "),
            (b"a\n[x]", "; "),
            (b"const x = 1;", "// "),
            (b"hello", "# "),
        ] {
            let out = plain(input, &ctx(), "/x").content;
            assert!(out.starts_with(input));
            let tail = format!("\n{prefix}see {URL} for the latest version\n");
            assert!(out.ends_with(tail.as_bytes()), "{prefix}");
        }
    }

    #[test]
    fn html_rules() {
        let out = html(b"<html><BODY>x</BODY  ></html>", &ctx(), "/x").content;
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(&format!("<img src=\"{URL}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">\n</BODY  >")));
        let s = String::from_utf8(html(b"<p>x</p>", &ctx(), "/x").content).unwrap();
        assert!(s.starts_with("<p>x</p>\n<img"));
    }

    #[test]
    fn docx_and_xlsx_rejections() {
        for name in ["docx", "xlsx"] {
            let e = instrument(name, b"plain text", &ctx(), "/x").unwrap_err();
            assert!(e.to_string().contains("not a valid"), "{e}");
        }
        let z = super::super::ooxml::write_zip(&[(
            "word/document.xml".into(),
            b"<w:body></w:body>".to_vec(),
        )])
        .unwrap();
        assert!(docx(&z, &ctx(), "/x")
            .unwrap_err()
            .to_string()
            .contains("missing expected member"));
        assert!(xlsx(&z, &ctx(), "/x")
            .unwrap_err()
            .to_string()
            .contains("no workbook relationships"));
    }

    #[test]
    fn xlsx_injection() {
        let z = super::super::ooxml::write_zip(&[
            ("[Content_Types].xml".into(), b"<Types/>".to_vec()),
            (
                "xl/_rels/workbook.xml.rels".into(),
                b"<Relationships><Relationship Id=\"rId900\"/></Relationships>".to_vec(),
            ),
        ])
        .unwrap();
        let out = xlsx(&z, &ctx(), "/x").unwrap().content;
        let mut a = Archive::open(&out, "XLSX").unwrap();
        assert_eq!(
            a.names,
            ["[Content_Types].xml", "xl/_rels/workbook.xml.rels"]
        );
        let rels = a.read_text("xl/_rels/workbook.xml.rels").unwrap();
        assert!(rels.contains("Id=\"rId901\"") && rels.contains(URL));
    }

    #[test]
    fn pdf_round_trip() {
        let src =
            super::super::generators::honeydoc_pdf(&Context::new("a", "http://o", "", "linux"))
                .unwrap()
                .content;
        let out = pdf(&src, &ctx(), "/x").unwrap().content;
        let doc = lopdf::Document::load_mem(&out).unwrap();
        let oa = doc
            .catalog()
            .unwrap()
            .get(b"OpenAction")
            .unwrap()
            .as_dict()
            .unwrap();
        assert_eq!(oa.get(b"URI").unwrap().as_str().unwrap(), URL.as_bytes());
        assert!(pdf(b"%PDF-1.4 garbage", &ctx(), "/x").is_err());
    }

    #[test]
    fn png_comment_and_jpeg_segment() {
        let mut src = Vec::new();
        {
            let mut e = png::Encoder::new(&mut src, 2, 2);
            e.set_color(png::ColorType::Rgba);
            e.set_depth(png::BitDepth::Eight);
            let mut w = e.write_header().unwrap();
            w.write_image_data(&[7u8; 16]).unwrap();
        }
        let out = image(&src, &ctx(), "/x").unwrap().content;
        let r = png::Decoder::new(std::io::Cursor::new(out))
            .read_info()
            .unwrap();
        let texts: Vec<_> = r
            .info()
            .uncompressed_latin1_text
            .iter()
            .map(|t| (t.keyword.clone(), t.text.clone()))
            .collect();
        assert_eq!(texts, [("Comment".to_owned(), format!("reference: {URL}"))]);
        let jpg = image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 2], &ctx(), "/x")
            .unwrap()
            .content;
        assert_eq!(&jpg[2..4], &[0xFF, 0xFE]);
        assert!(image(b"BM....", &ctx(), "/x").is_err());
        assert!(image(b"\x89PNG\r\n\x1a\ngarbage", &ctx(), "/x").is_err());
    }
}
