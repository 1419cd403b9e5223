//! What the daemon writes to disk is its own user's only (platform.md §4.1; issue #13): the data
//! directory is 0700, the SQLite database (and so its `-wal`/`-shm`, which SQLite creates with
//! the database file's mode), the JWT secret and the initial admin password are 0600. Existing
//! paths are never chmod-ed behind the operator's back; [`too_open`] lets boot warn instead.

use std::io;
use std::path::{Path, PathBuf};

/// Mode of a directory the daemon creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of a file the daemon creates.
pub const FILE_MODE: u32 = 0o600;

/// `mkdir -p` with every directory it creates at 0700 (existing ones are left as they are).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(path)
}

/// Create `path` empty at 0600 unless it exists (an empty file is a valid empty SQLite
/// database, so SQLite then keeps that mode for the file and gives it to `-wal` and `-shm`).
pub fn create_file_if_missing(path: &Path) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write `contents` to `path` readable by the owner only (0600 on unix).
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Whether permission bits `mode` grant more than `allowed` (pure).
pub fn exceeds(mode: u32, allowed: u32) -> bool {
    mode & 0o777 & !allowed != 0
}

/// The paths among `data_dir` and the files the daemon keeps in it (plus `extra`, e.g. a
/// SQLite database elsewhere and its `-wal`/`-shm`) whose modes grant group or other access,
/// with their mode. Missing paths are skipped.
pub fn too_open(data_dir: &Path, extra: &[PathBuf]) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut check = |p: PathBuf, allowed: u32| {
            if let Ok(meta) = std::fs::metadata(&p) {
                let mode = meta.permissions().mode() & 0o777;
                if exceeds(mode, allowed) {
                    out.push((p, mode));
                }
            }
        };
        check(data_dir.to_path_buf(), DIR_MODE);
        for name in ["jwt.secret", "initial-admin-password"] {
            check(data_dir.join(name), FILE_MODE);
        }
        for p in extra {
            check(p.clone(), FILE_MODE);
        }
    }
    out
}

/// A SQLite database path with its `-wal` and `-shm` companions.
pub fn sqlite_files(db: &Path) -> Vec<PathBuf> {
    let mut out = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        out.push(PathBuf::from(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeds_flags_group_and_other_bits_only() {
        assert!(!exceeds(0o700, DIR_MODE));
        assert!(!exceeds(0o600, FILE_MODE));
        assert!(!exceeds(0o400, FILE_MODE));
        assert!(exceeds(0o755, DIR_MODE));
        assert!(exceeds(0o644, FILE_MODE));
        assert!(exceeds(0o640, FILE_MODE));
        assert!(exceeds(0o602, FILE_MODE));
        assert!(exceeds(0o700, FILE_MODE), "execute bit on a secret file");
    }

    #[cfg(unix)]
    #[test]
    fn created_paths_are_private_and_open_ones_are_reported() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir_all(&dir).unwrap();
        for d in [tmp.path().join("a"), dir.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        let db = dir.join("x.db");
        create_file_if_missing(&db).unwrap();
        create_file_if_missing(&db).unwrap();
        write(&dir.join("jwt.secret"), b"s").unwrap();
        assert!(too_open(&dir, &sqlite_files(&db)).is_empty());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = too_open(&dir, &sqlite_files(&db));
        assert_eq!(open, vec![(dir.clone(), 0o755), (db.clone(), 0o644)]);
    }
}
