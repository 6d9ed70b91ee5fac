//! Child processes that are killed when the test that started them ends, however it ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running child process, killed (SIGKILL) on drop.
pub struct ChildGuard {
    /// The child.
    pub child: Child,
    /// A name for messages.
    pub name: String,
}

impl ChildGuard {
    /// Spawns `command` with stdout and stderr piped.
    pub fn spawn(name: &str, command: &mut Command) -> ChildGuard {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        ChildGuard {
            child,
            name: name.to_owned(),
        }
    }

    /// Reads the child's stdout until a line contains `marker`, or panics after `timeout`.
    /// Returns that line. (The rest of stdout is drained in the background.)
    pub fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> String {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        let wanted = marker.to_owned();
        std::thread::spawn(move || {
            let mut found = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !found && line.contains(&wanted) {
                    found = true;
                    let _ = sender.send(line);
                }
            }
        });
        receiver
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("{} did not print {marker:?} within {timeout:?}", self.name))
    }

    /// Waits for the child to exit, or panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `libc`-free: uses the `kill` program).
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
