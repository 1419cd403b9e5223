//! Placement paths (canary.md §10): operator-path validation and seeding defaults.

/// Validate an operator placement path; the error is the 400 detail (§10's checks in §10's
/// order). Segment-based, fixing §16.8 (the reference matched substrings, refusing legal names
/// such as `/a/b../c` and `/a/.../b` while accepting `//` and `/./`, which then failed at
/// plant time): every segment between slashes must be a real name — not empty, not `.`,
/// not `..` — and the path must not end with `/`.
pub fn validate_placement_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("placement_path must be absolute (start with '/')");
    }
    if p.contains('\0') {
        return Err("placement_path may not contain NUL");
    }
    if p.contains('\n') || p.contains('\r') {
        return Err("placement_path may not contain newlines");
    }
    for seg in p[1..].split('/') {
        match seg {
            ".." => return Err("placement_path may not contain '..' segments"),
            "." => return Err("placement_path may not contain '.' segments"),
            "" => {
                return Err(
                    "placement_path may not contain empty segments ('//' or a trailing '/')",
                )
            }
            _ => {}
        }
    }
    Ok(())
}

/// The persona's login (`admin` / `Administrator`).
pub fn persona_user(persona: &str) -> &'static str {
    if persona == "windows" {
        "Administrator"
    } else {
        "admin"
    }
}

/// Seeding default path of a generator for a persona (§10 table).
pub fn default_path(generator: &str, persona: &str) -> String {
    let user = persona_user(persona);
    let win = persona == "windows";
    let rel = match generator {
        "git_config" if win => "AppData/Local/Programs/Git/etc/gitconfig",
        "git_config" => ".git/config",
        "env_file" if win => "Desktop/prod.env",
        "env_file" => ".env",
        "ssh_key" => ".ssh/id_rsa",
        "aws_creds" => ".aws/credentials",
        "honeydoc" => "Documents/quarterly_report.html",
        "honeydoc_docx" => "Documents/quarterly_report.docx",
        "honeydoc_pdf" => "Documents/quarterly_report.pdf",
        "fingerprint_html" => "Documents/asset_directory.html",
        "fingerprint_svg" => "Documents/network_topology.svg",
        other => return format!("/tmp/{other}.canary"),
    };
    format!("/home/{user}/{rel}")
}

/// §15: placement of a planner-cultivated canary under `/home/{login}/` (login from
/// `domain::realism::login_for`, the single source of truth).
pub fn cultivated_path(generator: &str, login: &str) -> String {
    let rel = match generator {
        "aws_creds" => ".aws/credentials",
        "env_file" => "app/.env",
        "git_config" => ".git/config",
        "ssh_key" => ".ssh/id_rsa",
        "honeydoc" => "Documents/notes.html",
        "honeydoc_docx" => "Documents/Q3-Operations-Review.docx",
        "honeydoc_pdf" => "Documents/Q3-Operations-Review.pdf",
        "fingerprint_html" => "Documents/asset_directory.html",
        "fingerprint_svg" => "Documents/network_topology.svg",
        "mysql_dump" => return "/var/backups/db_backup.sql".to_owned(),
        other => return format!("/tmp/{other}.canary"),
    };
    format!("/home/{login}/{rel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_lists() {
        for ok in [
            "/etc/x.conf",
            "/a/b..c",
            "/a/.../b",
            "/a/b../c",
            "/home/x/.env",
            "/home/x/it's $(x)",
        ] {
            assert_eq!(validate_placement_path(ok), Ok(()), "{ok}");
        }
        for (bad, word) in [
            ("", "absolute"),
            ("relative/path", "absolute"),
            ("/a\0b", "NUL"),
            ("/a\nb", "newlines"),
            ("/a\rb", "newlines"),
            ("/a/../b", "'..'"),
            ("/a/..", "'..'"),
            ("/..", "'..'"),
            ("/a/./b", "'.'"),
            ("/a//b", "empty"),
            ("/a/b/", "empty"),
            ("/", "empty"),
        ] {
            let e = validate_placement_path(bad).unwrap_err();
            assert!(e.contains(word), "{bad:?}: {e}");
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(
            default_path("aws_creds", "linux"),
            "/home/admin/.aws/credentials"
        );
        assert_eq!(
            default_path("env_file", "windows"),
            "/home/Administrator/Desktop/prod.env"
        );
        assert_eq!(
            default_path("mysql_dump", "linux"),
            "/tmp/mysql_dump.canary"
        );
        assert_eq!(
            cultivated_path("mysql_dump", "x"),
            "/var/backups/db_backup.sql"
        );
        assert_eq!(cultivated_path("env_file", "bob"), "/home/bob/app/.env");
    }
}
