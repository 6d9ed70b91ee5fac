//! [`FileStateStore`]: a rollout's state in a directory, one JSON file per service, written
//! atomically after every transition, with an exclusive lock so that two processes never
//! drive the same rollout.
//!
//! Layout of the state directory (default `.canary/`, or `$CANARY_STATE_DIR`):
//! - `SERVICE.json` — the [`Rollout`], written as temp file + fsync + rename + fsync(dir),
//!   so a reader (or a crash) only ever sees a whole file, the old or the new;
//! - `SERVICE.claim.json` — the claim: which process drives the rollout (host, pid
//!   namespace, pid), a token that grows with every new claim (the fence), and its heartbeat
//!   (`renewed_at`, renewed every `ttl/6`; stale after `ttl_seconds`, see
//!   [`canary_core::claim`]). A claim whose heartbeat is stale, or whose process is gone
//!   from this host, is taken over by the next claimant; the old holder finds out before
//!   its next write ([`StateStore::check_claim`]) and stops;
//! - `SERVICE.lock` — an advisory `flock` held only while the claim is read and rewritten
//!   (claim, heartbeat, release), so that two claimants never both take a stale claim;
//! - `SERVICE.control.json` — a request from `canary promote` or `canary abort` in another
//!   shell, picked up by the driving process at its next wake-up;
//! - `SERVICE.DATE.json` — finished rollouts archived by `--restart`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use canary_core::claim::{DEFAULT_CLAIM_TTL, age_seconds, heartbeat_period, is_stale};
use canary_core::ports::StateStore;
#[cfg(test)]
use canary_core::rollout::ControlAction;
use canary_core::rollout::{ControlRequest, Rollout};
use canary_core::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How long a claimant waits for the lock that guards the claim record (held for the
/// moment of a read and a write by whoever changes the claim) before it gives up.
const GUARD_WAIT: Duration = Duration::from_secs(3);

/// The claim record, `SERVICE.claim.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ClaimRecord {
    /// The host the holder runs on.
    host: String,
    /// Its pid namespace (`/proc/self/ns/pid`), so that a pid is looked up only where it
    /// means the same process (containers sharing a state volume have their own).
    pid_namespace: String,
    /// Its kernel's boot id: another machine of the same name (a shared state volume) has
    /// the same initial pid namespace name, but not the same boot id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    /// Its process id.
    pid: u32,
    /// Grows by one with every new claim: a holder whose token is no longer the record's
    /// has lost the claim.
    token: u64,
    /// The holder's last heartbeat, by its clock.
    renewed_at: Timestamp,
    /// How long the claim lives without a heartbeat, as the holder promised.
    ttl_seconds: u64,
    /// The holder gave the claim up: anyone may claim it. The record stays, so that a
    /// holder that lost the claim meanwhile can still be told who took it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    released: bool,
}

impl ClaimRecord {
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds)
    }

    /// Whether the holder no longer counts as alive: no heartbeat within its time to live,
    /// or a process of this host (and pid namespace) that is gone.
    fn is_gone(&self, now: Timestamp) -> bool {
        self.released
            || is_stale(self.renewed_at, self.ttl(), now)
            || (self.is_local() && process_is_gone(self.pid))
    }

    /// Whether the holder's pid means a process here: the same host name, pid namespace
    /// and boot (a record without a boot id, from an older canary, never is).
    fn is_local(&self) -> bool {
        self.host == host_name()
            && self.pid_namespace == pid_namespace()
            && self.boot_id.is_some()
            && self.boot_id == boot_id()
    }

    /// Whether `other` is the same claim (holder and token), still held.
    fn same(&self, other: &ClaimRecord) -> bool {
        !self.released
            && !other.released
            && self.token == other.token
            && self.pid == other.pid
            && self.host == other.host
            && self.pid_namespace == other.pid_namespace
    }

    /// A holder that counts as gone, for messages: which process, why it counts as gone,
    /// and since when it was silent.
    fn describe_gone(&self, now: Timestamp) -> String {
        let why = if self.is_local() && process_is_gone(self.pid) {
            "is gone (no such process on this host)"
        } else {
            "counts as gone (its claim is stale)"
        };
        format!(
            "pid {} on {}, which {why}; its last heartbeat was at {} ({} s ago; a claim lapses \
             after {} s without one)",
            self.pid,
            self.host,
            self.renewed_at
                .round(jiff::Unit::Second)
                .unwrap_or(self.renewed_at),
            age_seconds(self.renewed_at, now),
            self.ttl_seconds
        )
    }

    /// The holder, for messages.
    fn describe(&self, now: Timestamp) -> String {
        if self.released {
            return format!(
                "pid {} on {}, which has released it since",
                self.pid, self.host
            );
        }
        format!(
            "pid {} on {}, last heartbeat {} s ago; its claim lapses after {} s without one",
            self.pid,
            self.host,
            age_seconds(self.renewed_at, now),
            self.ttl_seconds
        )
    }
}

/// This host's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// This kernel's boot id (a random UUID per boot); `None` where there is no /proc.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// This process's pid namespace, as the kernel names it (`pid:[4026531836]`).
fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Whether process `pid` of this pid namespace is gone: no such process, or a zombie
/// (killed, not yet reaped by its parent). A pid taken again by another process looks
/// alive: then the claim's heartbeat decides, which only takes longer.
fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| matches!(state, 'Z' | 'X')),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The state directory of one service.
#[derive(Debug)]
pub struct FileStateStore {
    dir: PathBuf,
    service: String,
    /// How long this store's claim lives without a heartbeat.
    ttl: Duration,
    /// The claim this store holds, as written.
    held: Mutex<Option<ClaimRecord>>,
}

impl FileStateStore {
    /// The store of `service`'s rollout in `dir` (created on first write).
    pub fn new(dir: &Path, service: &str) -> FileStateStore {
        FileStateStore {
            dir: dir.to_path_buf(),
            service: service.to_owned(),
            ttl: DEFAULT_CLAIM_TTL,
            held: Mutex::new(None),
        }
    }

    /// The same store, whose claims live `ttl` without a heartbeat
    /// ([`canary_core::claim::DEFAULT_CLAIM_TTL`] otherwise).
    pub fn with_claim_ttl(mut self, ttl: Duration) -> FileStateStore {
        self.ttl = ttl;
        self
    }

    /// The state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.service))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.service))
    }

    fn claim_path(&self) -> PathBuf {
        self.dir.join(format!("{}.claim.json", self.service))
    }

    /// The claim record; `None` when there is none, or one that does not parse (only a
    /// hand-made one can: it is written whole or not at all).
    fn read_claim(&self) -> Result<Option<ClaimRecord>> {
        let path = self.claim_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.io_error("read", &path, err)),
        }
    }

    fn write_claim(&self, record: &ClaimRecord) -> Result<()> {
        let path = self.claim_path();
        let json = serde_json::to_vec(record).map_err(|e| Error::Usage(e.to_string()))?;
        write_durably(&path, &json).map_err(|e| self.io_error("write", &path, e))
    }

    fn held(&self) -> Option<ClaimRecord> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_held(&self, record: Option<ClaimRecord>) {
        *self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = record;
    }

    /// The lost-claim error: who holds it now.
    fn lost(&self, now_holder: Option<&ClaimRecord>) -> Error {
        let by = now_holder.map_or_else(
            || "removed by someone else (no claim record)".to_owned(),
            |r| format!("taken over by {}", r.describe(Timestamp::now())),
        );
        Error::ClaimLost(format!(
            "the claim on the rollout of {} was {by}; this process stops driving it and touches nothing more",
            self.service
        ))
    }

    /// Takes the lock that guards the claim record, waiting at most [`GUARD_WAIT`] (it is
    /// held only for a read and a write).
    fn guard(&self) -> Result<File> {
        let started = std::time::Instant::now();
        loop {
            match self.try_lock()? {
                Ok(file) => return Ok(file),
                Err(_) if started.elapsed() < GUARD_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(pid) => {
                    return Err(Error::Mismatch {
                        component: "state",
                        message: format!(
                            "the claim on the rollout of {} is being changed by another process (pid {pid}) for more than {} s; try again",
                            self.service,
                            GUARD_WAIT.as_secs()
                        ),
                    });
                }
            }
        }
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
            format!(".{}.claim.json.", self.service),
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
    async fn claim(&self, take_over: bool) -> Result<()> {
        let mut guard = self.guard()?;
        let path = self.lock_path();
        // The pid in the guard file is for the message of a claimant who finds it locked.
        guard
            .set_len(0)
            .and_then(|()| write!(guard, "{}", std::process::id()))
            .map_err(|e| self.io_error("write", &path, e))?;
        let now = Timestamp::now();
        let previous = self.read_claim()?;
        if let Some(previous) = &previous
            && !take_over
            && !previous.is_gone(now)
        {
            return Err(Error::Mismatch {
                component: "state",
                message: format!(
                    // The fact only: what to do next depends on the command that asked
                    // (`promote` and `abort` leave a request; `rollout` says how to act).
                    "a rollout of {} is in progress, driven by another process ({})",
                    self.service,
                    previous.describe(now)
                ),
            });
        }
        let record = ClaimRecord {
            host: host_name(),
            pid_namespace: pid_namespace(),
            boot_id: boot_id(),
            pid: std::process::id(),
            token: previous.as_ref().map_or(1, |p| p.token.saturating_add(1)),
            renewed_at: now,
            ttl_seconds: self.ttl.as_secs().max(1),
            released: false,
        };
        self.write_claim(&record)?;
        self.set_held(Some(record));
        self.remove_stale_temporaries();
        Ok(())
    }

    async fn release(&self) -> Result<()> {
        let Some(held) = self.held() else {
            return Ok(());
        };
        let _guard = self.guard()?;
        self.set_held(None);
        // A claim taken over is the new holder's: it stays as it is.
        if self.read_claim()?.is_some_and(|now| now.same(&held)) {
            self.write_claim(&ClaimRecord {
                released: true,
                renewed_at: Timestamp::now(),
                ..held
            })?;
        }
        Ok(())
    }

    async fn heartbeat(&self) -> Result<()> {
        let Some(held) = self.held() else {
            return Ok(());
        };
        let _guard = self.guard()?;
        let current = self.read_claim()?;
        match current {
            Some(current) if current.same(&held) => {
                let renewed = ClaimRecord {
                    renewed_at: Timestamp::now(),
                    ..held
                };
                self.write_claim(&renewed)?;
                self.set_held(Some(renewed));
                Ok(())
            }
            other => Err(self.lost(other.as_ref())),
        }
    }

    async fn check_claim(&self) -> Result<()> {
        let Some(held) = self.held() else {
            return Ok(());
        };
        match self.read_claim()? {
            Some(current) if current.same(&held) => Ok(()),
            other => Err(self.lost(other.as_ref())),
        }
    }

    fn heartbeat_period(&self) -> Option<Duration> {
        Some(heartbeat_period(self.ttl))
    }

    async fn holder(&self) -> Result<Option<String>> {
        if self.held().is_some() {
            return Ok(None);
        }
        let now = Timestamp::now();
        Ok(self
            .read_claim()?
            .filter(|record| !record.is_gone(now))
            .map(|record| record.describe(now)))
    }

    async fn stale_claim(&self) -> Result<Option<String>> {
        if self.held().is_some() {
            return Ok(None);
        }
        let now = Timestamp::now();
        Ok(self
            .read_claim()?
            .filter(|record| !record.released && record.is_gone(now))
            .map(|record| record.describe_gone(now)))
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
        // A holder that lost its claim (paused while another took over) must not overwrite
        // the new holder's state.
        self.check_claim().await?;
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
        // Read, decide and write under the guard, so that two askers never both find the
        // place free (an abort is never replaced: `ControlRequest::refused_by`).
        let _guard = self.guard()?;
        let pending = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<ControlRequest>(&text).ok());
        if let Some(why) = pending.and_then(|pending| request.refused_by(&pending)) {
            return Err(Error::Usage(format!(
                "refusing the {} of {}: {why}",
                request.action.name(),
                self.service
            )));
        }
        write_durably(&path, &json).map_err(|e| self.io_error("write", &path, e))
    }

    async fn take_request(&self) -> Result<Option<ControlRequest>> {
        let path = self.control_path();
        if !path.exists() {
            return Ok(None);
        }
        // Under the guard: a request put between the read and the removal is not lost.
        let _guard = self.guard()?;
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

    /// The claim `store` holds, renewed `age` ago as its holder wrote it.
    fn age_claim(store: &FileStateStore, age: i64) {
        let mut record = store.read_claim().unwrap().expect("a claim");
        record.renewed_at = Timestamp::now() - jiff::SignedDuration::from_secs(age);
        store.write_claim(&record).unwrap();
    }

    #[test]
    fn a_claim_whose_heartbeat_is_stale_is_taken_over_and_its_holder_finds_out() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStateStore::new(dir.path(), "checkout");
        let second = FileStateStore::new(dir.path(), "checkout");
        block_on(first.claim(false)).unwrap();
        // Its process lives (it is this one) and its heartbeat is 29 s old: alive.
        age_claim(&first, 29);
        let refused = block_on(second.claim(false)).unwrap_err();
        assert!(
            refused.to_string().contains("last heartbeat 29 s ago"),
            "{refused}"
        );
        // A heartbeat renews it.
        block_on(first.heartbeat()).unwrap();
        assert!(block_on(second.claim(false)).is_err());
        // Silent for longer than its time to live (a paused process): taken over.
        age_claim(&first, 31);
        block_on(second.claim(false)).unwrap();
        for lost in [
            block_on(first.check_claim()).unwrap_err(),
            block_on(first.heartbeat()).unwrap_err(),
            block_on(first.save(&a_rollout())).unwrap_err(),
        ] {
            assert!(matches!(lost, Error::ClaimLost(_)), "{lost:?}");
            assert!(lost.to_string().contains("taken over by pid"), "{lost}");
        }
        // The old holder's release leaves the new claim alone.
        block_on(first.release()).unwrap();
        block_on(second.check_claim()).unwrap();
        block_on(second.save(&a_rollout())).unwrap();
    }

    #[test]
    fn a_claim_of_a_process_gone_from_this_host_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStateStore::new(dir.path(), "checkout");
        block_on(first.claim(false)).unwrap();
        // A pid above the kernel's pid_max is never alive.
        let mut record = first.read_claim().unwrap().unwrap();
        record.pid = 4_194_304 + 1;
        first.write_claim(&record).unwrap();
        let second = FileStateStore::new(dir.path(), "checkout");
        block_on(second.claim(false)).unwrap();
        assert_eq!(
            second.read_claim().unwrap().unwrap().token,
            record.token + 1
        );
    }

    /// Two machines of one name sharing a state volume have the same initial pid namespace
    /// name: a pid of the other one means nothing here, whatever it is (review finding of
    /// 2026-12-01; the claim was taken at once before the boot id was recorded).
    #[test]
    fn a_claim_of_another_boot_of_this_host_name_is_not_taken_for_a_dead_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStateStore::new(dir.path(), "checkout");
        block_on(first.claim(false)).unwrap();
        let mut record = first.read_claim().unwrap().unwrap();
        record.pid = 4_194_304 + 1;
        record.boot_id = Some("00000000-0000-4000-8000-000000000000".to_owned());
        first.write_claim(&record).unwrap();
        let second = FileStateStore::new(dir.path(), "checkout");
        let refused = block_on(second.claim(false)).unwrap_err();
        assert!(refused.to_string().contains("in progress"), "{refused}");
        // An older canary's record (no boot id) is judged by its heartbeat alone, too.
        record.boot_id = None;
        first.write_claim(&record).unwrap();
        assert!(block_on(second.claim(false)).is_err());
    }

    fn a_rollout() -> Rollout {
        let policy = canary_core::policy::Policy::from_yaml(
            include_str!("../../../policies/ml-api.yaml"),
            "ml-api.yaml",
        )
        .unwrap();
        canary_core::rollout::Machine::new(policy)
            .unwrap()
            .start(Timestamp::now(), None)
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
    fn a_pending_abort_is_never_replaced_by_a_promote() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path(), "checkout");
        let at = |seconds: i64| jiff::Timestamp::from_second(1_000 + seconds).unwrap();
        let abort = ControlRequest {
            action: ControlAction::Abort {
                reason: "errors".to_owned(),
            },
            rollout_id: Some("rel-1".to_owned()),
            rollout_started_at: jiff::Timestamp::UNIX_EPOCH,
            requested_at: at(0),
        };
        let promote = ControlRequest {
            action: ControlAction::Promote,
            requested_at: at(5),
            ..abort.clone()
        };
        block_on(store.request(&abort)).unwrap();
        let refused = block_on(store.request(&promote)).unwrap_err();
        assert_eq!(refused.exit_code(), canary_core::ExitCode::BadInput);
        assert!(
            refused
                .to_string()
                .starts_with("refusing the promote of checkout: an abort (errors) requested at"),
            "{refused}"
        );
        assert_eq!(block_on(store.take_request()).unwrap(), Some(abort.clone()));
        // An abort takes the place of a pending promote.
        block_on(store.request(&promote)).unwrap();
        let later_abort = ControlRequest {
            requested_at: at(6),
            ..abort
        };
        block_on(store.request(&later_abort)).unwrap();
        assert_eq!(block_on(store.take_request()).unwrap(), Some(later_abort));
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
