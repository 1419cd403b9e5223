//! Content-addressed blob store (canary.md §5): `<root>/<h[0:2]>/<h[2:4]>/<h>`, written to a
//! unique sibling `.part` file then renamed (two concurrent writers of the same bytes both
//! succeed), directories 0700 and files 0600 (`private_fs`). Blocking: call from
//! `spawn_blocking`.

use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::private_fs;

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob bytes missing on disk")]
    NotFound,
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The store rooted at one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl BlobStore {
    pub fn new(root: PathBuf) -> BlobStore {
        BlobStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the content with digest `h` (64 lowercase hex characters).
    pub fn path_for(&self, h: &str) -> Result<PathBuf, BlobError> {
        if h.len() != 64
            || !h
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(BlobError::BadDigest(h.to_owned()));
        }
        Ok(self.root.join(&h[0..2]).join(&h[2..4]).join(h))
    }

    /// Store `bytes` (idempotent); returns the digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let h = sha256_hex(bytes);
        let path = self.path_for(&h)?;
        if path.is_file() {
            return Ok(h);
        }
        if let Some(dir) = path.parent() {
            private_fs::create_dir_all(dir)?;
        }
        let mut tag = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut tag);
        let part = path.with_file_name(format!("{h}.{}.part", hex::encode(tag)));
        private_fs::write(&part, bytes)?;
        if let Err(e) = std::fs::rename(&part, &path) {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
        Ok(h)
    }

    /// The bytes of digest `h`.
    pub fn read(&self, h: &str) -> Result<Vec<u8>, BlobError> {
        match std::fs::read(self.path_for(h)?) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove the bytes of `h`: true if removed, false if already absent.
    pub fn unlink(&self, h: &str) -> Result<bool, BlobError> {
        match std::fs::remove_file(self.path_for(h)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn layout_idempotence_modes_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let h = store.put(b"hello").unwrap();
        assert_eq!(h, sha256_hex(b"hello"));
        let p = store.path_for(&h).unwrap();
        assert!(p.starts_with(dir.path().join("blobs").join(&h[0..2]).join(&h[2..4])));
        assert_eq!(store.put(b"hello").unwrap(), h);
        assert_eq!(store.read(&h).unwrap(), b"hello");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert!(store.unlink(&h).unwrap());
        assert!(!store.unlink(&h).unwrap());
        assert!(matches!(store.read(&h), Err(BlobError::NotFound)));
        assert!(matches!(
            store.path_for("abc"),
            Err(BlobError::BadDigest(_))
        ));
        assert!(matches!(
            store.path_for(&"../".repeat(22)[..64]),
            Err(BlobError::BadDigest(_))
        ));
    }
}
