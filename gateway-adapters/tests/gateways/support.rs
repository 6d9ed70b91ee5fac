//! Small helpers: free ports, backends that answer with their name and count their requests,
//! HAProxy and NGINX started in the foreground from a temporary directory, and waiting with
//! generous limits (the machine is shared and noisy: limits are for hangs, not for speed).

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use canary_core::policy::SocketAddress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a started program may take to come up, or a reload to take effect.
pub(crate) const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Fails the test, with how to get the program, when it is not installed. Never skips.
pub(crate) fn require_program(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: these tests run the real program; install it with \
         `apt-get install -y {package}`"
    );
}

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// An error and all its sources, on one line, as the CLI prints them.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Polls `ready` until it holds, panicking with `what` after `limit`.
pub(crate) async fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP server on a free loopback port that answers every request with its name and
/// counts the requests it answered.
pub(crate) struct Backend {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub(crate) async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    if read_head(&mut stream).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                            name.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                });
            }
        });
        Backend { addr, hits, task }
    }

    /// Requests answered so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a request's head (up to the empty line); false if the peer went away first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Sends `n` GET requests to `addr`, each on a new connection, and returns the bodies
/// (each proxy balances per request; a new connection each time keeps it simple).
pub(crate) async fn get_many(addr: SocketAddr, n: usize) -> Vec<String> {
    get_many_with(addr, n, "").await
}

/// [`get_many`], each request carrying `headers` (lines ending in CRLF).
pub(crate) async fn get_many_with(addr: SocketAddr, n: usize, headers: &str) -> Vec<String> {
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the proxy");
        stream
            .write_all(
                format!(
                    "GET / HTTP/1.1\r\nHost: canary.test\r\n{headers}Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("send request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        let response = String::from_utf8_lossy(&response).into_owned();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "the proxy answered {response:?}"
        );
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        bodies.push(body.to_owned());
    }
    bodies
}

/// A child process killed (and reaped) when dropped.
pub(crate) struct Running {
    child: Option<Child>,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
}

impl Running {
    fn spawn(mut command: Command, log: PathBuf) -> Running {
        let out = fs::File::create(&log).expect("create log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log file"))
            .stderr(out)
            .spawn()
            .expect("start program");
        Running {
            child: Some(child),
            log,
        }
    }

    /// Panics with the log if the program has exited.
    fn check_alive(&mut self, what: &str) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            panic!("{what} exited ({status}) while starting:\n{log}");
        }
    }

    /// Asks the process to stop with SIGTERM, waits for it up to [`STARTUP_LIMIT`], then
    /// kills it if it is still there.
    pub(crate) fn terminate(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let start = Instant::now();
            while start.elapsed() < STARTUP_LIMIT {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Kills the process now (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something accepts connections at `addr` now.
fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// HAProxy in the foreground with backend `app` holding servers `stable` and `canary`
/// (weight 1 each, no health checks), a frontend on a free port, and the runtime API on a
/// unix socket (and, if asked, on a TCP port as well), both at level admin.
pub(crate) struct Haproxy {
    pub(crate) process: Running,
    pub(crate) unix_socket: PathBuf,
    pub(crate) tcp_socket: Option<SocketAddr>,
    pub(crate) frontend: SocketAddr,
    dir: tempfile::TempDir,
}

impl Haproxy {
    pub(crate) async fn start(
        stable: &Backend,
        canary: &Backend,
        with_tcp_socket: bool,
    ) -> Haproxy {
        Haproxy::start_with_rules(stable, canary, with_tcp_socket, "").await
    }

    /// Starts it with `rules` (lines, `{dir}` replaced by its directory) in backend `app`
    /// before its servers; an empty ACL file `{dir}/canary.acl` exists.
    pub(crate) async fn start_with_rules(
        stable: &Backend,
        canary: &Backend,
        with_tcp_socket: bool,
        rules: &str,
    ) -> Haproxy {
        require_program("/usr/sbin/haproxy", "haproxy");
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("canary.acl"), "").expect("write the ACL file");
        let rules = rules.replace("{dir}", &dir.path().display().to_string());
        let unix_socket = dir.path().join("admin.sock");
        let frontend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let tcp_socket: Option<SocketAddr> =
            with_tcp_socket.then(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let tcp_line = tcp_socket
            .map(|a| format!("    stats socket ipv4@{a} level admin\n"))
            .unwrap_or_default();
        let config = format!(
            "global\n\
             \x20   nbthread 1\n\
             \x20   stats socket {socket} mode 600 level admin\n\
             {tcp_line}\
             \x20   stats timeout 30s\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             frontend web\n\
             \x20   bind {frontend}\n\
             \x20   default_backend app\n\
             backend app\n\
             \x20   balance roundrobin\n\
             {rules}\
             \x20   server stable {stable}\n\
             \x20   server canary {canary}\n",
            socket = unix_socket.display(),
            stable = stable.addr,
            canary = canary.addr,
        );
        let config_path = dir.path().join("haproxy.cfg");
        fs::write(&config_path, config).expect("write haproxy.cfg");
        let mut command = Command::new("/usr/sbin/haproxy");
        command.arg("-f").arg(&config_path).arg("-db");
        let mut process = Running::spawn(command, dir.path().join("haproxy.log"));

        let start = Instant::now();
        loop {
            process.check_alive("haproxy");
            let unix_ready = std::os::unix::net::UnixStream::connect(&unix_socket).is_ok();
            let tcp_ready = tcp_socket.is_none_or(accepts);
            if unix_ready && tcp_ready && accepts(frontend) {
                break;
            }
            assert!(
                start.elapsed() < STARTUP_LIMIT,
                "haproxy did not come up; its log:\n{}",
                fs::read_to_string(&process.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Haproxy {
            process,
            unix_socket,
            tcp_socket,
            frontend,
            dir,
        }
    }

    /// Its directory (the configuration, the ACL file `canary.acl`).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn unix_address(&self) -> SocketAddress {
        SocketAddress::Unix(self.unix_socket.clone())
    }

    /// Sends one runtime API command on its own connection, as another operator would.
    pub(crate) fn runtime_command(&self, command: &str) -> String {
        use std::io::{Read, Write};
        let mut stream =
            std::os::unix::net::UnixStream::connect(&self.unix_socket).expect("connect");
        stream
            .write_all(format!("{command}\n").as_bytes())
            .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        answer
    }
}

/// NGINX with one worker in the foreground from a temporary prefix, proxying a free loopback
/// port to `upstream app`, defined in the include file `upstream.conf`.
pub(crate) struct Nginx {
    /// The master process, stopped by `Drop`.
    _process: Running,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) upstream_file: PathBuf,
    pub(crate) listen: SocketAddr,
    master_pid: u32,
}

impl Nginx {
    /// Starts NGINX; `upstream` is the include file's first content.
    pub(crate) async fn start(upstream: &str) -> Nginx {
        require_program("/usr/sbin/nginx", "nginx-light");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let upstream_file = dir.path().join("upstream.conf");
        fs::write(&upstream_file, upstream).expect("write upstream.conf");
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // As root, workers would run as `nobody` and could not use the temp directories
        // here; run them as the user running the tests.
        let user = if is_root() { "user root;\n" } else { "" };
        let config = format!(
            "daemon off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log notice;\n\
             {user}\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {d}/body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   include {upstream};\n\
             \x20   server {{\n\
             \x20       listen {listen};\n\
             \x20       location / {{ proxy_pass http://app; }}\n\
             \x20   }}\n\
             }}\n",
            upstream = upstream_file.display(),
        );
        fs::write(dir.path().join("nginx.conf"), config).expect("write nginx.conf");
        let mut command = Command::new("/usr/sbin/nginx");
        command.args(Self::base_args(dir.path()));
        let mut process = Running::spawn(command, dir.path().join("stderr.log"));

        let pid_file = dir.path().join("nginx.pid");
        let start = Instant::now();
        let master_pid = loop {
            process.check_alive("nginx");
            let pid = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(pid) = pid
                && accepts(listen)
                && !workers(pid).is_empty()
            {
                break pid;
            }
            assert!(
                start.elapsed() < STARTUP_LIMIT,
                "nginx did not come up; its error log:\n{}",
                fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Nginx {
            _process: process,
            dir,
            upstream_file,
            listen,
            master_pid,
        }
    }

    fn base_args(dir: &Path) -> Vec<String> {
        vec![
            "-p".to_owned(),
            dir.display().to_string(),
            "-e".to_owned(),
            dir.join("error.log").display().to_string(),
            "-c".to_owned(),
            dir.join("nginx.conf").display().to_string(),
        ]
    }

    /// The reload command a policy for this NGINX would give.
    pub(crate) fn reload_command(&self) -> Vec<String> {
        let mut argv = vec!["/usr/sbin/nginx".to_owned()];
        argv.extend(Self::base_args(self.dir.path()));
        argv.extend(["-s".to_owned(), "reload".to_owned()]);
        argv
    }

    /// Sends the master process `signal` (e.g. SIGSTOP to pause it: a master that takes no
    /// signals, as a hung or stopped one, while its workers keep serving).
    pub(crate) fn signal_master(&self, signal: nix::sys::signal::Signal) {
        let pid = i32::try_from(self.master_pid).expect("a pid fits in i32");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal nginx");
    }

    /// The worker processes now.
    pub(crate) fn workers(&self) -> HashSet<u32> {
        workers(self.master_pid)
    }

    /// Waits until every worker in `old` has exited and a new one runs: the configuration
    /// loaded by the last reload is then the only one serving.
    pub(crate) async fn wait_for_new_workers(&self, old: &HashSet<u32>) {
        let start = Instant::now();
        loop {
            let now = self.workers();
            if !now.is_empty() && now.is_disjoint(old) {
                return;
            }
            assert!(
                start.elapsed() < STARTUP_LIMIT,
                "nginx did not replace its workers after the reload; its error log:\n{}",
                fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL would orphan the workers, and orphaned NGINX workers keep running. SIGTERM
        // makes the master stop its workers first; any worker still there after is killed.
        let workers = self.workers();
        self._process.terminate();
        for pid in workers {
            if !is_dead(pid)
                && let Ok(pid) = i32::try_from(pid)
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Live (not zombie) children of `parent`, from /proc.
fn workers(parent: u32) -> HashSet<u32> {
    let mut children = HashSet::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, ppid)) = stat_state_and_parent(pid)
            && ppid == parent
            && state != 'Z'
        {
            children.insert(pid);
        }
    }
    children
}

/// A process's state letter and parent from /proc/PID/stat; `None` when it is gone.
pub(crate) fn stat_state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether a process is gone (or a zombie, which runs nothing).
pub(crate) fn is_dead(pid: u32) -> bool {
    stat_state_and_parent(pid).is_none_or(|(state, _)| state == 'Z')
}

/// Splits `bodies` into (stable, canary) counts, checking nothing else answered.
pub(crate) fn tally(bodies: &[String]) -> (usize, usize) {
    let stable = bodies.iter().filter(|b| *b == "stable").count();
    let canary = bodies.iter().filter(|b| *b == "canary").count();
    assert_eq!(
        stable + canary,
        bodies.len(),
        "unexpected answers: {bodies:?}"
    );
    (stable, canary)
}
