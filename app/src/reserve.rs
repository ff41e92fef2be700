//! Disk space kept in reserve: a file of written (not sparse) blocks that is deleted when the
//! disk is full, so that what must still write (opening the stores, the access log) has room,
//! and made again once space returns.
//!
//! The data directory keeps one (`<data>/reserve`, [`crate::data_dir`]): released when opening
//! fails on a full disk, so that the server starts, serves reads and refuses writes until it
//! can be made again. The access log keeps its own (`<data>/access-log/reserve`), released at
//! its first failed write.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::AppError;

/// A reserve file of `bytes` at `path` (0 bytes: none is kept).
#[derive(Clone, Debug)]
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
    /// What the reserve is for, in the log's and errors' words ("the access log's reserve").
    name: &'static str,
}

impl Reserve {
    /// A reserve of `bytes` kept at `path`.
    pub fn new(path: PathBuf, bytes: u64, name: &'static str) -> Reserve {
        Reserve { path, bytes, name }
    }

    /// Where the reserve file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size it is kept at.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True when the file is there at its full size (or none is kept).
    pub fn is_kept(&self) -> bool {
        self.bytes == 0 || std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes)
    }

    /// True when the file exists at all, so that releasing it frees space.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Makes the reserve file when it is missing or shorter. Written, not sparse, so that its
    /// blocks are really taken, and synced. On failure (the disk is full) what was written of
    /// it is removed again, leaving the space to what must write, and the error says so.
    pub fn ensure(&self) -> Result<(), AppError> {
        let have = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if self.bytes == 0 || have >= self.bytes {
            return Ok(());
        }
        let made = (|| {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let chunk = vec![0u8; 1024 * 1024];
            let mut left = self.bytes - have;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                file.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            file.sync_all()
        })();
        made.map_err(|e| {
            // Back to what it was: a partial reserve would hold space and protect nothing.
            let _ = if have == 0 {
                std::fs::remove_file(&self.path)
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .and_then(|f| f.set_len(have))
            };
            AppError::Store {
                context: self.name,
                detail: format!(
                    "making {} of {} MiB: {e}",
                    self.path.display(),
                    self.bytes / (1024 * 1024)
                ),
            }
        })
    }

    /// Deletes the reserve file, freeing its space; true when there was one to delete.
    pub fn release(&self) -> bool {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(path = %self.path.display(), "released {}", self.name);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::error!(error = %e, "releasing {} failed", self.name);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_is_made_to_its_size_kept_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::new(dir.path().join("reserve"), 3 * 1024 * 1024 + 5, "a reserve");
        assert!(!reserve.is_kept());
        reserve.ensure().unwrap();
        assert_eq!(
            std::fs::metadata(reserve.path()).unwrap().len(),
            3 * 1024 * 1024 + 5
        );
        assert!(reserve.is_kept());
        assert!(reserve.release());
        assert!(!reserve.exists());
        assert!(!reserve.release(), "nothing left to release");
    }

    #[test]
    fn no_reserve_is_kept_at_zero_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::new(dir.path().join("reserve"), 0, "a reserve");
        reserve.ensure().unwrap();
        assert!(reserve.is_kept());
        assert!(!reserve.exists());
    }
}
