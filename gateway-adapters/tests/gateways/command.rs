//! `CommandRouter` running real shell scripts.

use std::fs;
use std::path::Path;
use std::time::Duration;

use canary_core::policy::{CommandRouterSpec, GatewaySpec};
use canary_core::ports::{TrafficRouter, set_and_verify};
use canary_core::{Error, ExitCode};
use canary_gateways::{CommandRouter, router_for};

use crate::support::{STARTUP_LIMIT, chain, is_dead, wait_until};

/// Writes a script and returns the argv that runs it with `sh` (running it through `sh`
/// avoids executing a file this multi-threaded process has just written, which can fail
/// with "text file busy").
fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    vec!["sh".to_owned(), path.display().to_string()]
}

fn spec(set: Vec<String>, get: Option<Vec<String>>, timeout: Duration) -> CommandRouterSpec {
    CommandRouterSpec { set, get, timeout }
}

fn with_args(mut argv: Vec<String>, args: &[&str]) -> Vec<String> {
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_gets_the_weights_and_get_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let set = script(
        dir.path(),
        "set.sh",
        &format!(
            "echo \"$@ env=$CANARY_WEIGHT/$CANARY_STABLE_WEIGHT\" >> {d}/calls\n\
             echo \"$2\" > {d}/weight\n"
        ),
    );
    let get = script(dir.path(), "get.sh", &format!("cat {d}/weight\n"));
    let router = router_for(&GatewaySpec::Command(spec(
        with_args(
            set,
            &["--canary={weight}", "{weight}", "--stable={stable-weight}"],
        ),
        Some(get),
        Duration::from_secs(30),
    )))
    .unwrap()
    .expect("not a Kubernetes gateway");
    assert!(
        !router.describe().contains("unverified"),
        "{}",
        router.describe()
    );

    for weight in [10u8, 25, 50, 100, 0] {
        set_and_verify(router.as_ref(), weight)
            .await
            .unwrap_or_else(|e| panic!("set {weight}%: {}", chain(&e)));
    }
    let calls = fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        vec![
            "--canary=10 10 --stable=90 env=10/90",
            "--canary=25 25 --stable=75 env=25/75",
            "--canary=50 50 --stable=50 env=50/50",
            "--canary=100 100 --stable=0 env=100/0",
            "--canary=0 0 --stable=100 env=0/100",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_exit_is_unavailable_with_the_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let set = script(
        dir.path(),
        "set.sh",
        "echo 'some progress on stdout'\n\
         echo \"cannot reach the load balancer to set $1\" >&2\n\
         echo 'second line' >&2\n\
         exit 3\n",
    );
    let router = CommandRouter::new(&spec(
        with_args(set, &["{weight}"]),
        None,
        Duration::from_secs(30),
    ));
    let err = router.set_canary_weight(10).await.unwrap_err();
    match &err {
        Error::Unavailable {
            component: "command",
            address,
            message,
            ..
        } => {
            assert_eq!(address, "`sh`");
            assert!(message.contains("exited with code 3"), "{message}");
            assert!(
                message.contains("cannot reach the load balancer to set 10 | second line"),
                "{message}"
            );
            assert!(!message.contains("progress"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // The script starts a child that would keep the pipes open, records both pids, hangs.
    let set = script(
        dir.path(),
        "set.sh",
        &format!(
            "sleep 300 &\n\
             echo $! > {d}/child.pid\n\
             echo $$ > {d}/shell.pid\n\
             sleep 300\n"
        ),
    );
    let router = CommandRouter::new(&spec(set, None, Duration::from_millis(500)));
    let err = router.set_canary_weight(10).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("command at `sh`: did not finish within 500ms and was killed"),
        "{text}"
    );
    for file in ["shell.pid", "child.pid"] {
        let pid: u32 = fs::read_to_string(dir.path().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        wait_until(&format!("{file} ({pid}) to be gone"), STARTUP_LIMIT, || {
            is_dead(pid)
        })
        .await;
    }
    // A failed set leaves the weight unknown.
    let err = router.canary_weight().await.unwrap_err();
    assert!(chain(&err).contains("no `get` command"), "{}", chain(&err));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_output_must_be_a_weight() {
    let dir = tempfile::tempdir().unwrap();
    let set = script(dir.path(), "set.sh", "exit 0\n");
    let get_router = |body: &str| {
        let get = script(dir.path(), "get.sh", body);
        CommandRouter::new(&spec(set.clone(), Some(get), Duration::from_secs(30)))
    };

    assert_eq!(get_router("echo 42\n").canary_weight().await.unwrap(), 42);
    assert_eq!(
        get_router("printf '7%%'\n").canary_weight().await.unwrap(),
        7
    );

    for (body, expected) in [
        ("echo 'ten percent'\n", "printed \"ten percent\""),
        ("echo 150\n", "printed \"150\""),
        ("echo\n", "printed \"\""),
        ("echo 'weight: 10'\n", "printed \"weight: 10\""),
        (
            "echo 'no such service' >&2; exit 2\n",
            "exited with code 2: no such service",
        ),
    ] {
        let err = get_router(body).canary_weight().await.unwrap_err();
        let text = chain(&err);
        assert!(
            matches!(
                err,
                Error::Unavailable {
                    component: "command",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains(expected), "{body:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_get_the_last_weight_set_is_reported_and_called_unverified() {
    let dir = tempfile::tempdir().unwrap();
    // Fails for 50, succeeds otherwise.
    let set = script(dir.path(), "set.sh", "test \"$1\" != 50\n");
    let router = CommandRouter::new(&spec(
        with_args(set, &["{weight}"]),
        None,
        Duration::from_secs(30),
    ));
    assert!(
        router.describe().contains("unverified"),
        "{}",
        router.describe()
    );
    assert!(!router.is_verified());

    let err = router.canary_weight().await.unwrap_err();
    assert!(chain(&err).contains("no `get` command"), "{}", chain(&err));

    set_and_verify(&router, 25).await.unwrap();
    assert_eq!(router.canary_weight().await.unwrap(), 25);

    let err = set_and_verify(&router, 50).await.unwrap_err();
    assert!(
        chain(&err).contains("exited with code 1"),
        "{}",
        chain(&err)
    );
    // After a failed set nothing is claimed.
    assert!(router.canary_weight().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_a_clear_error() {
    let router = CommandRouter::new(&spec(
        vec!["/nonexistent/set-weight".to_owned(), "{weight}".to_owned()],
        None,
        Duration::from_secs(5),
    ));
    let err = router.set_canary_weight(10).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("command at `/nonexistent/set-weight`: could not be started"),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_caller_stops_waiting_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let set = script(
        dir.path(),
        "set.sh",
        &format!(
            "sleep 300 &\n\
             echo $! > {d}/child.pid.tmp && mv {d}/child.pid.tmp {d}/child.pid\n\
             echo $$ > {d}/shell.pid.tmp && mv {d}/shell.pid.tmp {d}/shell.pid\n\
             sleep 300\n"
        ),
    );
    let router = CommandRouter::new(&spec(set, None, Duration::from_secs(300)));
    let pids = [dir.path().join("child.pid"), dir.path().join("shell.pid")];
    {
        // The rollout is interrupted while the command runs: its future is dropped.
        let change = router.set_canary_weight(10);
        tokio::pin!(change);
        let start = std::time::Instant::now();
        while !pids.iter().all(|p| p.exists()) {
            tokio::select! {
                result = &mut change => panic!("the command finished: {result:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            assert!(start.elapsed() < STARTUP_LIMIT, "the script never started");
        }
    }
    for file in &pids {
        let pid: u32 = fs::read_to_string(file).unwrap().trim().parse().unwrap();
        wait_until(
            &format!("{} ({pid}) to be gone", file.display()),
            STARTUP_LIMIT,
            || is_dead(pid),
        )
        .await;
    }
}
