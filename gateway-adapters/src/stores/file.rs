//! [`FileStateStore`]: a rollout's state in a directory, one JSON file per service, written
//! atomically after every transition, with an exclusive lock so that two processes never
//! drive the same rollout.
//!
//! Layout of the state directory (default `.canary/`, or `$CANARY_STATE_DIR`):
//! - `SERVICE.json` — the [`Rollout`], written as temp file + fsync + rename + fsync(dir),
//!   so a reader (or a crash) only ever sees a whole file, the old or the new;
//! - `SERVICE.lock` — held (advisory `flock`) by the process driving the rollout, with its pid
//!   inside for messages; the kernel drops it when the process dies, however it dies;
//! - `SERVICE.control.json` — a request from `canary promote` or `canary abort` in another
//!   shell, picked up by the driving process at its next wake-up;
//! - `SERVICE.DATE.json` — finished rollouts archived by `--restart`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use canary_core::ports::StateStore;
#[cfg(test)]
use canary_core::rollout::ControlAction;
use canary_core::rollout::{ControlRequest, Rollout};
use canary_core::{Error, Result};

/// The state directory of one service.
#[derive(Debug)]
pub struct FileStateStore {
    dir: PathBuf,
    service: String,
    /// The lock file, while this store holds the claim.
    lock: Mutex<Option<File>>,
}

impl FileStateStore {
    /// The store of `service`'s rollout in `dir` (created on first write).
    pub fn new(dir: &Path, service: &str) -> FileStateStore {
        FileStateStore {
            dir: dir.to_path_buf(),
            service: service.to_owned(),
            lock: Mutex::new(None),
        }
    }

    /// The state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.service))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.service))
    }

    fn control_path(&self) -> PathBuf {
        self.dir.join(format!("{}.control.json", self.service))
    }

    fn io_error(&self, what: &str, path: &Path, err: std::io::Error) -> Error {
        Error::Unavailable {
            component: "state",
            address: path.display().to_string(),
            message: format!("cannot {what}"),
            source: Some(Box::new(err)),
        }
    }

    /// Removes the temporary files a writer killed between write and rename left behind
    /// (`.SERVICE.json.PID.tmp`, [`write_durably`]). Only under the claim: no other process
    /// writes this service's files then. Best effort: a file that cannot be removed stays.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let prefixes = [
            format!(".{}.json.", self.service),
            format!(".{}.control.json.", self.service),
        ];
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") && prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn try_lock(&self) -> Result<std::result::Result<File, String>> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| self.io_error("create the state directory", &self.dir, e))?;
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| self.io_error("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Ok(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Ok(Err(holder.trim().to_owned()))
            }
            Err(std::fs::TryLockError::Error(err)) => Err(self.io_error("lock", &path, err)),
        }
    }
}

#[async_trait]
impl StateStore for FileStateStore {
    async fn claim(&self, _take_over: bool) -> Result<()> {
        // A flock dies with its process, so there is never a stale holder to take over from.
        let mut file = match self.try_lock()? {
            Ok(file) => file,
            Err(pid) => {
                return Err(Error::Mismatch {
                    component: "state",
                    message: format!(
                        // The fact only: what to do next depends on the command that asked
                        // (`promote` and `abort` leave a request; `rollout` says how to act).
                        "a rollout of {} is in progress, driven by another process (pid {pid})",
                        self.service
                    ),
                });
            }
        };
        let path = self.lock_path();
        file.set_len(0)
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error("write", &path, e))?;
        *self.lock.lock().expect("the lock mutex is never poisoned") = Some(file);
        self.remove_stale_temporaries();
        Ok(())
    }

    async fn release(&self) -> Result<()> {
        self.lock
            .lock()
            .expect("the lock mutex is never poisoned")
            .take();
        Ok(())
    }

    async fn holder(&self) -> Result<Option<String>> {
        if self.lock.lock().map(|l| l.is_some()).unwrap_or(false) {
            return Ok(None);
        }
        // Probing the lock takes and drops it at once; the file is not written.
        Ok(self.try_lock()?.err().map(|pid| format!("pid {pid}")))
    }

    async fn load(&self) -> Result<Option<Rollout>> {
        let path = self.path();
        // Bytes, not text: a state that is not UTF-8 is bad input for the parser to name.
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.io_error("read", &path, err)),
        };
        Rollout::from_json(&text).map(Some).map_err(|err| {
            Error::Usage(format!(
                "{}: {err}; inspect it, then move it away to start over",
                path.display()
            ))
        })
    }

    async fn save(&self, rollout: &Rollout) -> Result<()> {
        let path = self.path();
        let json = rollout.to_json(true)?;
        write_durably(&path, json.as_bytes()).map_err(|e| self.io_error("save", &path, e))
    }

    async fn archive(&self, rollout: &Rollout) -> Result<String> {
        let stamp = rollout.started_at().strftime("%Y%m%dT%H%M%SZ").to_string();
        let target = self.dir.join(format!("{}.{stamp}.json", self.service));
        std::fs::rename(self.path(), &target)
            .map_err(|e| self.io_error("archive", &self.path(), e))?;
        Ok(target.display().to_string())
    }

    async fn request(&self, request: &ControlRequest) -> Result<()> {
        let json = serde_json::to_vec(request).map_err(|e| Error::Usage(e.to_string()))?;
        let path = self.control_path();
        write_durably(&path, &json).map_err(|e| self.io_error("write", &path, e))
    }

    async fn take_request(&self) -> Result<Option<ControlRequest>> {
        let path = self.control_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let _ = std::fs::remove_file(&path);
        Ok(serde_json::from_str(&text).ok())
    }

    fn describe(&self) -> String {
        format!("state file {}", self.path().display())
    }
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new one, never half
/// of one, and the new one survives a crash: a temporary file in the same directory,
/// synced, renamed over `path`, and the directory synced. For state files and reports.
/// The file is readable by its owner only (0600): state and reports name the service,
/// its gateway and its evidence; [`write_durably_with_mode`] writes with another mode.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_durably_with_mode(path, bytes, 0o600)
}

/// [`write_durably`] with the file's permission bits (less the process's umask), e.g.
/// 0o644 for a report a CI system uploads.
pub fn write_durably_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        // A temporary file left by a killed run may exist with other bits: start afresh.
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    // The rename itself must reach the disk too.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn files_are_written_0600_unless_asked_otherwise() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("state.json");
        std::fs::write(&private, "old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_durably(&private, b"{}").unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        let shared = dir.path().join("report.json");
        write_durably_with_mode(&shared, b"{}", 0o644).unwrap();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        assert_eq!(mode & 0o044, 0o044 & !umask(), "{mode:o}");
    }

    /// The process's umask, as the bits a plain `std::fs::write` (mode 0666) leaves out.
    fn umask() -> u32 {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, "").unwrap();
        !std::fs::metadata(&probe).unwrap().permissions().mode() & 0o666
    }

    #[test]
    fn a_second_claim_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStateStore::new(dir.path(), "checkout");
        let second = FileStateStore::new(dir.path(), "checkout");
        block_on(first.claim(false)).unwrap();
        let err = block_on(second.claim(false)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // No advice that would send `canary promote` or `canary abort` back to themselves.
        assert!(
            !err.to_string().contains("canary promote")
                && !err.to_string().contains("canary abort"),
            "{err}"
        );
        block_on(first.release()).unwrap();
        block_on(second.claim(false)).unwrap();
    }

    #[test]
    fn a_claim_removes_the_temporary_files_a_killed_writer_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path(), "checkout");
        std::fs::write(dir.path().join(".checkout.json.4242.tmp"), "{").unwrap();
        std::fs::write(dir.path().join(".checkout.control.json.17.tmp"), "{").unwrap();
        std::fs::write(dir.path().join(".other.json.4242.tmp"), "{").unwrap();
        block_on(store.claim(false)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".other.json.4242.tmp"],
            "another service's files stay"
        );
    }

    #[test]
    fn requests_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path(), "checkout");
        assert_eq!(block_on(store.take_request()).unwrap(), None);
        let abort = ControlRequest {
            action: ControlAction::Abort {
                reason: "x".to_owned(),
            },
            rollout_id: Some("rel-1".to_owned()),
            rollout_started_at: jiff::Timestamp::UNIX_EPOCH,
            requested_at: jiff::Timestamp::UNIX_EPOCH,
        };
        block_on(store.request(&abort)).unwrap();
        assert_eq!(block_on(store.take_request()).unwrap(), Some(abort));
        assert_eq!(block_on(store.take_request()).unwrap(), None);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path(), "checkout");
        std::fs::write(store.path(), "{ not json").unwrap();
        let err = block_on(store.load()).unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
    }
}
