//! [`SmallDisk`]: a real filesystem that runs out of space, for tests of a full disk

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted on a fresh temporary directory, unmounted when dropped
///
/// Mounting needs root (CI runs as root); where it is not allowed, [`SmallDisk::mount`] says
/// why and the test skips that part. Nothing else on the machine is touched: the mount point
/// is a new directory under the temporary directory, and the filler is one file in it.
#[derive(Debug)]
pub struct SmallDisk {
    dir: PathBuf,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on a new directory
    ///
    /// # Errors
    ///
    /// Why it could not (not root, no `mount`, no tmpfs): print it and skip.
    pub fn mount(bytes: u64) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "troupe-small-disk-{}-{}",
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Ok(Self {
                filler: dir.join("filler"),
                dir,
            }),
            Ok(out) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!(
                    "cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("cannot run mount: {e}"))
            }
        }
    }

    /// The mount point
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Grows a filler file until the disk is full (`ENOSPC`); returns how many bytes it took
    ///
    /// # Panics
    ///
    /// On any error but a full disk.
    pub fn fill(&self) -> u64 {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("open the filler");
        let chunk = vec![0u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => return written,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => return written,
                Err(e) => panic!("filling {}: {e}", self.filler.display()),
            }
        }
    }

    /// Removes the filler: the space it took is free again
    ///
    /// # Panics
    ///
    /// If the filler exists and cannot be removed.
    pub fn free(&self) {
        match std::fs::remove_file(&self.filler) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", self.filler.display()),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a file a test left open must not keep the mount (or the test) alive.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
