//! Validation of the values that reach the Docker API: container names and in-container
//! paths. bollard splices container names into request URLs unescaped, so a name is checked
//! against Docker's own grammar before any call.

use super::DockerError;

/// Longest container name accepted (Docker itself has no small limit; DNS-ish cap).
pub const MAX_CONTAINER_NAME_LEN: usize = 253;
/// Longest absolute path accepted inside a container (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single path component (Linux `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Check a container name or id against Docker's grammar `[a-zA-Z0-9][a-zA-Z0-9_.-]+`
/// (a leading `/`, as Docker reports names, is tolerated and stripped).
pub fn validate_container_name(name: &str) -> Result<&str, DockerError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let bytes = bare.as_bytes();
    let ok = bytes.len() >= 2
        && bytes.len() <= MAX_CONTAINER_NAME_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(bare)
    } else {
        Err(DockerError::InvalidArgument(format!(
            "invalid container name {name:?}"
        )))
    }
}

/// Container name of one decky service: `<decky>-<service>` with `_` in the service name
/// replaced by `-` (platform.md §6.4). The only way decnetd derives container names.
pub fn service_container_name(decky: &str, service: &str) -> String {
    crate::domain::fleet::expected_container(decky, service)
}

/// An absolute, normalised path inside a container split into parent directory and file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPath<'a> {
    /// Parent directory (`/` for a file at the root).
    pub dir: &'a str,
    /// Last component.
    pub file_name: &'a str,
}

/// Validate a path for a file inside a container: non-empty, absolute, no NUL, no empty,
/// `.` or `..` components, no trailing `/`, bounded length. Other bytes (spaces, quotes,
/// `$`, newlines…) are legal file-name characters and are carried verbatim, never through a
/// shell.
pub fn validate_container_path(path: &str) -> Result<ContainerPath<'_>, DockerError> {
    let bad = |why: &str| DockerError::InvalidArgument(format!("{why}: {path:?}"));
    if path.is_empty() {
        return Err(DockerError::InvalidArgument("empty path".to_owned()));
    }
    if path.as_bytes().contains(&0) {
        return Err(bad("path contains a NUL byte"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad("path too long"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad("path is not absolute"));
    };
    for component in rest.split('/') {
        match component {
            "" => return Err(bad("path has an empty component or trailing slash")),
            "." | ".." => return Err(bad("path has a '.' or '..' component")),
            c if c.len() > MAX_COMPONENT_LEN => return Err(bad("path component too long")),
            _ => {}
        }
    }
    // `rest` is non-empty and has no empty component, so there is a last '/'.
    let cut = path.rfind('/').unwrap_or(0);
    let dir = if cut == 0 { "/" } else { &path[..cut] };
    Ok(ContainerPath {
        dir,
        file_name: &path[cut + 1..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for ok in ["decky-01-ssh", "a1", "abc_def.ghi-jkl", "/decky-01-ssh"] {
            assert!(validate_container_name(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_container_name("/x-ssh").unwrap(), "x-ssh");
        for bad in [
            "",
            "a",
            "-leading-dash",
            ".dot",
            "../../images/json",
            "a/b",
            "a b",
            "a?b",
            "a#b",
            "a%2fb",
            "x;rm -rf",
            "décky",
            "a\nb",
            "a\0b",
        ] {
            assert!(
                matches!(
                    validate_container_name(bad),
                    Err(DockerError::InvalidArgument(_))
                ),
                "{bad:?}"
            );
        }
        assert!(validate_container_name(&"a".repeat(254)).is_err());
    }

    #[test]
    fn service_container_names() {
        assert_eq!(service_container_name("decky-01", "ssh"), "decky-01-ssh");
        assert_eq!(
            service_container_name("decky-01", "smtp_relay"),
            "decky-01-smtp-relay"
        );
    }

    #[test]
    fn paths_split() {
        let p = validate_container_path("/home/alice/notes.txt").unwrap();
        assert_eq!(p.dir, "/home/alice");
        assert_eq!(p.file_name, "notes.txt");
        let p = validate_container_path("/top").unwrap();
        assert_eq!(p.dir, "/");
        assert_eq!(p.file_name, "top");
        let p = validate_container_path("/tmp/it's $(id) `x`\nz").unwrap();
        assert_eq!(p.dir, "/tmp");
        assert_eq!(p.file_name, "it's $(id) `x`\nz");
    }

    #[test]
    fn bad_paths_rejected() {
        let long_component = format!("/{}", "a".repeat(256));
        let long_path = "/a".repeat(2049);
        for bad in [
            "",
            "relative/file",
            "/",
            "/tmp/",
            "//etc/passwd",
            "/tmp//x",
            "/tmp/../etc/shadow",
            "/../x",
            "/tmp/./x",
            "/tmp/..",
            "/tmp/a\0b",
            long_component.as_str(),
            long_path.as_str(),
        ] {
            assert!(
                matches!(
                    validate_container_path(bad),
                    Err(DockerError::InvalidArgument(_))
                ),
                "{bad:?}"
            );
        }
        match validate_container_path("") {
            Err(DockerError::InvalidArgument(m)) => assert_eq!(m, "empty path"),
            other => panic!("{other:?}"),
        }
    }
}
