//! Generators (canary.md §8): synthesised fakes, deterministic in the context. Office and PDF
//! files are built with the `zip` and `lopdf` crates; XML text goes through `quick-xml`'s
//! escaper.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::ooxml::{allocate_rid, inject_docx, write_zip, DOCX_MIME_PARTS};
use super::{Artifact, CanaryError, Context, DAY};

/// The Q3 text shared by the honeydocs (no `decnet`, §7 stealth rule).
pub const Q3_TITLE: &str = "Q3 Operations Review (DRAFT)";
const Q3_LINES: [&str; 5] = [
    "Prepared for the operations leadership team. Internal use only.",
    "Summary: incident volume fell 12% quarter over quarter; MTTR improved in all regions.",
    "EMEA: 14 incidents, MTTR 3.1 h. AMER: 22 incidents, MTTR 2.4 h. APAC: 9 incidents, MTTR 4.0 h.",
    "Open items: vendor contract renewal, on-call rotation changes, DR test in October.",
    "Contact ops-review@corp.internal with corrections before Friday.",
];

fn sha_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn artifact(name: &str, content: Vec<u8>, mode: u32, days: i64, notes: Vec<String>) -> Artifact {
    Artifact {
        path: String::new(),
        content,
        mode,
        mtime_offset: -days * DAY,
        generator: Some(name.to_owned()),
        instrumenter: None,
        notes,
        fingerprint_nonce: None,
    }
}

/// Run the generator `name` (§6 registry).
pub fn generate(name: &str, ctx: &Context) -> Result<Artifact, CanaryError> {
    match name {
        "aws_creds" => Ok(aws_creds(ctx)),
        "env_file" => Ok(env_file(ctx)),
        "git_config" => Ok(git_config(ctx)),
        "ssh_key" => Ok(ssh_key(ctx)),
        "honeydoc" => Ok(honeydoc(ctx)),
        "honeydoc_docx" => honeydoc_docx(ctx),
        "honeydoc_pdf" => honeydoc_pdf(ctx),
        "mysql_dump" => mysql_dump(ctx),
        "fingerprint_html" => super::fingerprint::fingerprint_html(ctx),
        "fingerprint_svg" => super::fingerprint::fingerprint_svg(ctx),
        other => Err(CanaryError::UnknownGenerator(other.to_owned())),
    }
}

fn aws_key_pair(seed: &str) -> (String, String) {
    let access = format!("AKIA{}", &sha_hex(seed).to_ascii_uppercase()[..16]);
    let secret_full = STANDARD.encode(Sha256::digest(format!("secret:{seed}").as_bytes()));
    (access, secret_full.chars().take(40).collect())
}

/// §8.1: two AWS profiles derived from the slug; no URL, no slug (passive).
pub fn aws_creds(ctx: &Context) -> Artifact {
    let (a1, s1) = aws_key_pair(&ctx.slug);
    let (a2, s2) = aws_key_pair(&format!("prod-{}", ctx.slug));
    let text = format!(
        "[default]\naws_access_key_id = {a1}\naws_secret_access_key = {s1}\nregion = us-east-1\n\n\
         [prod]\naws_access_key_id = {a2}\naws_secret_access_key = {s2}\nregion = us-west-2\n"
    );
    artifact(
        "aws_creds",
        text.into_bytes(),
        0o600,
        14,
        vec![format!(
            "passive AWS keys {a1} / {a2} (alert on use in CloudTrail)"
        )],
    )
}

/// §8.2: a dotenv with the callback URL and a webhook sub-path.
pub fn env_file(ctx: &Context) -> Artifact {
    let url = ctx.url();
    let s = &ctx.slug;
    let text = format!(
        "# Production environment - DO NOT COMMIT\n\
         API_BASE_URL={url}\n\
         WEBHOOK_NOTIFY_URL={url}/webhook\n\
         DB_PASSWORD={db}\n\
         REDIS_URL=redis://:{redis}@redis.internal:6379/0\n\
         JWT_SECRET={jwt}\n\
         LOG_LEVEL=info\n\
         ENVIRONMENT=production\n",
        db = &sha_hex(&format!("db:{s}"))[..32],
        redis = &sha_hex(&format!("redis:{s}"))[..16],
        jwt = &sha_hex(&format!("jwt:{s}"))[..32],
    );
    artifact(
        "env_file",
        text.into_bytes(),
        0o600,
        7,
        vec![format!(
            "API_BASE_URL and WEBHOOK_NOTIFY_URL point at {url}"
        )],
    )
}

/// §8.3: a `.git/config` whose origin is the callback.
pub fn git_config(ctx: &Context) -> Artifact {
    let remote = format!("{}/repo.git", ctx.url());
    let text = format!(
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n\
         [remote \"origin\"]\n\turl = {remote}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n\
         [branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n"
    );
    artifact(
        "git_config",
        text.into_bytes(),
        0o644,
        30,
        vec![format!("remote origin url = {remote}")],
    )
}

fn host_of(base: &str) -> Option<String> {
    url::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

/// §8.4: a fake OpenSSH key whose comment names the DNS callback host.
pub fn ssh_key(ctx: &Context) -> Artifact {
    let digest = Sha256::digest(ctx.slug.as_bytes());
    let raw: Vec<u8> = digest.iter().copied().cycle().take(768).collect();
    let body = STANDARD.encode(raw);
    let mut text = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(70) {
        text.push_str(&String::from_utf8_lossy(chunk));
        text.push('\n');
    }
    text.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    let host = ctx
        .dns_host()
        .or_else(|| host_of(&ctx.http_base))
        .unwrap_or_else(|| "deploy.local".to_owned());
    text.push_str(&format!("# deploy@{host}\n"));
    artifact(
        "ssh_key",
        text.into_bytes(),
        0o600,
        60,
        vec![format!(
            "key comment names host {host} (resolving it trips DNS)"
        )],
    )
}

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// §8.5: an HTML report with a 1×1 image at the end of `<body>`.
pub fn honeydoc(ctx: &Context) -> Artifact {
    let url = esc(&ctx.url());
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n</head>\n<body>\n<h1>{t}</h1>\n<p>{p}</p>\n",
        t = esc(Q3_TITLE),
        p = esc(Q3_LINES[1])
    );
    html.push_str("<table>\n<tr><th>Region</th><th>Incidents</th><th>MTTR</th></tr>\n<tr><td>EMEA</td><td>14</td><td>3.1 h</td></tr>\n<tr><td>AMER</td><td>22</td><td>2.4 h</td></tr>\n<tr><td>APAC</td><td>9</td><td>4.0 h</td></tr>\n</table>\n");
    html.push_str("<p>Questions: <a href=\"mailto:ops-review@corp.internal\">ops-review@corp.internal</a></p>\n");
    html.push_str(&format!(
        "<img src=\"{url}\" width=\"1\" height=\"1\" alt=\"\">\n</body>\n</html>\n"
    ));
    artifact(
        "honeydoc",
        html.into_bytes(),
        0o644,
        21,
        vec![format!("1x1 image loads {}", ctx.url())],
    )
}

/// §8.6: a minimal DOCX with an external linked image (rId900).
pub fn honeydoc_docx(ctx: &Context) -> Result<Artifact, CanaryError> {
    let mut body = String::new();
    for line in std::iter::once(Q3_TITLE).chain(Q3_LINES) {
        body.push_str(&format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", esc(line)));
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><w:body>{body}<w:sectPr/></w:body></w:document>"
    );
    let rels = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"></Relationships>";
    let rid = allocate_rid(rels)?;
    let (document, rels) = inject_docx(&document, rels, &rid, &ctx.url())?;
    let parts: Vec<(String, Vec<u8>)> = vec![
        (
            "[Content_Types].xml".into(),
            DOCX_MIME_PARTS.0.as_bytes().to_vec(),
        ),
        ("_rels/.rels".into(), DOCX_MIME_PARTS.1.as_bytes().to_vec()),
        ("word/document.xml".into(), document.into_bytes()),
        ("word/_rels/document.xml.rels".into(), rels.into_bytes()),
    ];
    let content = write_zip(&parts)?;
    Ok(artifact(
        "honeydoc_docx",
        content,
        0o644,
        21,
        vec![format!("external image relationship {rid} → {}", ctx.url())],
    ))
}

/// §8.7: a one-page PDF whose catalog `/OpenAction` opens the callback URI.
pub fn honeydoc_pdf(ctx: &Context) -> Result<Artifact, CanaryError> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let reject = |e: lopdf::Error| CanaryError::Rejected(format!("cannot build PDF: {e}"));
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 16.into()]),
        Operation::new("Td", vec![72.into(), 720.into()]),
        Operation::new("Tj", vec![Object::string_literal(Q3_TITLE)]),
        Operation::new("Tf", vec!["F1".into(), 10.into()]),
    ];
    for line in Q3_LINES {
        ops.push(Operation::new("Td", vec![0.into(), (-24).into()]));
        ops.push(Operation::new(
            "Tj",
            vec![Object::string_literal(line.replace('—', "--"))],
        ));
    }
    ops.push(Operation::new("ET", vec![]));
    let content = Content { operations: ops }.encode().map_err(reject)?;
    let content_id = doc.add_object(Stream::new(dictionary! {}, content));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        "Contents" => content_id,
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        "OpenAction" => dictionary! { "S" => "URI", "URI" => Object::string_literal(ctx.url()) },
    });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| CanaryError::Rejected(format!("cannot build PDF: {e}")))?;
    Ok(artifact(
        "honeydoc_pdf",
        out,
        0o644,
        21,
        vec![format!("catalog /OpenAction URI {}", ctx.url())],
    ))
}

/// §8.8: a mysqldump whose camouflaged replication statement resolves `<slug>.<zone>`.
pub fn mysql_dump(ctx: &Context) -> Result<Artifact, CanaryError> {
    let Some(host) = ctx.dns_host() else {
        return Err(CanaryError::Rejected(
            "generator 'mysql_dump' requires a DNS zone (dns_zone is empty)".into(),
        ));
    };
    let s = &ctx.slug;
    let inner = format!(
        "SET @bb = CONCAT(\"CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD='replica-pw', SOURCE_RETRY_COUNT=1, SOURCE_PORT=3306, SOURCE_HOST='{host}', SOURCE_SSL=0, SOURCE_USER='{s}\", @@lc_time_names, @@hostname, \"';\");"
    );
    let b64 = STANDARD.encode(inner.as_bytes());
    let mut rows_users = Vec::new();
    let mut rows_keys = Vec::new();
    for i in 1..=3 {
        let h = sha_hex(&format!("user{i}:{s}"));
        rows_users.push(format!(
            "({i},'{name}','{mail}','$2b$12${hash}')",
            name = ["jsmith", "mlopez", "svc_backup"][i - 1],
            mail = [
                "jsmith@corp.internal",
                "mlopez@corp.internal",
                "backup@corp.internal"
            ][i - 1],
            hash = &h[..53]
        ));
        rows_keys.push(format!(
            "({i},{i},'{}')",
            &sha_hex(&format!("key{i}:{s}"))[..40]
        ));
    }
    let text = format!(
        "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost    Database: app\n\
-- ------------------------------------------------------\n-- Server version\t8.0.36\n\n\
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n/*!40101 SET NAMES utf8mb4 */;\n\
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n\n\
DROP TABLE IF EXISTS `users`;\nCREATE TABLE `users` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  `username` varchar(64) NOT NULL,\n  `email` varchar(255) NOT NULL,\n  `password_hash` varchar(255) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\n\
LOCK TABLES `users` WRITE;\nINSERT INTO `users` VALUES {users};\nUNLOCK TABLES;\n\n\
DROP TABLE IF EXISTS `api_keys`;\nCREATE TABLE `api_keys` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  `user_id` int NOT NULL,\n  `token` varchar(64) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\n\
LOCK TABLES `api_keys` WRITE;\nINSERT INTO `api_keys` VALUES {keys};\nUNLOCK TABLES;\n\n\
SET @b = '{b64}';\nSET @s2 = FROM_BASE64(@b);\nPREPARE stmt1 FROM @s2;\nEXECUTE stmt1;\nPREPARE stmt2 FROM @bb;\nEXECUTE stmt2;\nSTART REPLICA;\n\n\
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n\
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n\n-- Dump completed on 2026-09-30 23:14:07\n",
        users = rows_users.join(","),
        keys = rows_keys.join(","),
    );
    Ok(artifact(
        "mysql_dump",
        text.into_bytes(),
        0o600,
        7,
        vec![format!(
            "replication source host {host}, base64-camouflaged"
        )],
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{leaks_name, GENERATORS};
    use super::*;

    fn ctx() -> Context {
        Context::new(
            "abcdefghijklmnopqrstuvwxyz",
            "https://cb.example.org/",
            "zone.example",
            "linux",
        )
        .with_fingerprint_secret("unit-test-key")
    }

    #[test]
    fn every_generator_is_deterministic_with_notes_and_stealthy() {
        for name in GENERATORS {
            let a = generate(name, &ctx());
            let b = generate(name, &ctx());
            assert_eq!(a, b, "{name}");
            let a = a.unwrap();
            assert!(!a.notes.is_empty(), "{name}");
            assert!(!leaks_name(&a.content), "{name}");
            assert_eq!(a.generator.as_deref(), Some(name));
            assert!(a.mtime_offset < 0);
        }
    }

    #[test]
    fn url_bearing_generators_embed_slug_and_base() {
        for name in ["git_config", "env_file", "honeydoc"] {
            let a = generate(name, &ctx()).unwrap();
            let text = String::from_utf8(a.content).unwrap();
            assert!(
                text.contains("https://cb.example.org/c/abcdefghijklmnopqrstuvwxyz"),
                "{name}"
            );
        }
        let git = String::from_utf8(git_config(&ctx()).content).unwrap();
        assert!(git.contains("/c/abcdefghijklmnopqrstuvwxyz/repo.git"));
        assert!(git.contains("\turl = "));
    }

    #[test]
    fn aws_is_passive_and_slug_dependent() {
        let a = String::from_utf8(aws_creds(&ctx()).content).unwrap();
        assert!(!a.contains("abcdefghijklmnopqrstuvwxyz") && !a.contains("http"));
        let keys: Vec<&str> = a
            .lines()
            .filter_map(|l| l.strip_prefix("aws_access_key_id = "))
            .collect();
        assert_eq!(keys.len(), 2);
        for k in keys {
            assert!(k.starts_with("AKIA") && k.len() == 20);
            assert!(k[4..]
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        }
        let other = Context::new("zzzz", "https://cb.example.org", "", "linux");
        assert_ne!(aws_creds(&other).content, aws_creds(&ctx()).content);
    }

    #[test]
    fn ssh_key_host() {
        let t = String::from_utf8(ssh_key(&ctx()).content).unwrap();
        assert!(t.ends_with("# deploy@abcdefghijklmnopqrstuvwxyz.zone.example\n"));
        assert!(t.lines().all(|l| l.len() <= 70 || l.starts_with("-----")));
        let nozone = Context::new("s", "https://cb.example.org", "", "linux");
        let t = String::from_utf8(ssh_key(&nozone).content).unwrap();
        assert!(t.ends_with("# deploy@cb.example.org\n"));
    }

    #[test]
    fn mysql_dump_needs_zone_and_hides_slug() {
        let nozone = Context::new("s", "https://x", "", "linux");
        let e = mysql_dump(&nozone).unwrap_err();
        assert!(e.to_string().contains("dns_zone"));
        let t = String::from_utf8(mysql_dump(&ctx()).unwrap().content).unwrap();
        assert!(t.starts_with("-- MySQL dump") && t.contains("-- Dump completed"));
        assert!(!t.contains("abcdefghijklmnopqrstuvwxyz"));
        let b64 = t
            .lines()
            .find_map(|l| l.strip_prefix("SET @b = '"))
            .and_then(|l| l.strip_suffix("';"))
            .unwrap();
        let inner = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert!(inner.contains("SOURCE_HOST='abcdefghijklmnopqrstuvwxyz.zone.example'"));
    }

    #[test]
    fn docx_and_pdf_structure() {
        let d = honeydoc_docx(&ctx()).unwrap().content;
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(d)).unwrap();
        let names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert_eq!(
            names,
            [
                "[Content_Types].xml",
                "_rels/.rels",
                "word/document.xml",
                "word/_rels/document.xml.rels"
            ]
        );
        let mut rels = String::new();
        std::io::Read::read_to_string(
            &mut z.by_name("word/_rels/document.xml.rels").unwrap(),
            &mut rels,
        )
        .unwrap();
        assert!(rels.contains("Id=\"rId900\"") && rels.contains("TargetMode=\"External\""));
        let p = honeydoc_pdf(&ctx()).unwrap().content;
        assert!(p.starts_with(b"%PDF-1.5"));
        let doc = lopdf::Document::load_mem(&p).unwrap();
        let cat = doc.catalog().unwrap();
        let oa = cat.get(b"OpenAction").unwrap().as_dict().unwrap();
        assert_eq!(
            oa.get(b"URI").unwrap().as_str().unwrap(),
            b"https://cb.example.org/c/abcdefghijklmnopqrstuvwxyz"
        );
    }
}
