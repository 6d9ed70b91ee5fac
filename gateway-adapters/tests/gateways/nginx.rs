//! `NginxRouter` against a real NGINX (`/usr/sbin/nginx`, Debian's nginx-light), started
//! per test from a temporary prefix.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use canary_core::policy::{GatewaySpec, NginxSpec};
use canary_core::ports::{TrafficRouter, set_and_verify};
use canary_core::{Error, ExitCode};
use canary_gateways::{NginxRouter, PROBE_PATH, ProbeAnswer, router_for};

use crate::support::{Backend, Nginx, chain, free_port, get_many, tally};

fn spec(file: PathBuf, stable: &Backend, canary: &str, reload: Vec<String>) -> NginxSpec {
    NginxSpec {
        upstream_file: file,
        upstream: "app".to_owned(),
        canary: canary.to_owned(),
        stable: stable.addr.to_string(),
        reload,
        timeout: Duration::from_secs(30),
        weight_probe: None,
    }
}

/// NGINX in front of the two backends, its upstream file first written for 0 %, with a
/// weight probe on a free loopback port; and the router for it.
async fn start(stable: &Backend, canary: &Backend) -> (Nginx, NginxRouter) {
    let (nginx, spec) = start_spec(stable, canary).await;
    (nginx, NginxRouter::new(&spec).unwrap())
}

/// [`start`], giving the router's policy part instead, to change before use.
async fn start_spec(stable: &Backend, canary: &Backend) -> (Nginx, NginxSpec) {
    let probe: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The router renders the first file; NGINX starts from it.
    let mut draft = spec(
        PathBuf::from("unused"),
        stable,
        &canary.addr.to_string(),
        vec!["true".to_owned()],
    );
    draft.weight_probe = Some(probe);
    let nginx = Nginx::start(&NginxRouter::new(&draft).unwrap().render(0)).await;
    let mut spec = spec(
        nginx.upstream_file.clone(),
        stable,
        &canary.addr.to_string(),
        nginx.reload_command(),
    );
    spec.weight_probe = Some(probe);
    (nginx, spec)
}

/// What the weight probe at `address` answers now.
async fn probe(address: SocketAddr) -> ProbeAnswer {
    canary_metrics::install_crypto_provider();
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{address}{PROBE_PATH}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    ProbeAnswer::parse(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_written_reloaded_and_split_traffic() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, spec) = start_spec(&stable, &canary).await;
    let nginx_probe = spec.weight_probe.unwrap();
    let router = NginxRouter::new(&spec).unwrap();
    const REQUESTS: usize = 200;

    let (_, to_canary) = tally(&get_many(nginx.listen, 50).await);
    assert_eq!(to_canary, 0, "the canary got requests at 0%");

    for weight in [10u8, 25, 50, 100, 0] {
        let workers = nginx.workers();
        set_and_verify(&router, weight)
            .await
            .unwrap_or_else(|e| panic!("set {weight}%: {}", chain(&e)));
        // The file says what was asked, in NGINX's terms.
        let text = fs::read_to_string(&nginx.upstream_file).unwrap();
        let canary_line = match weight {
            0 => format!("server {} down;", canary.addr),
            w => format!("server {} weight={w};", canary.addr),
        };
        assert!(text.contains(&canary_line), "{text}");
        assert_eq!(router.canary_weight().await.unwrap(), weight);
        // The probe, answered by the configuration NGINX loaded, says the same.
        assert_eq!(probe(nginx_probe).await.canary, weight);

        // A reload swaps the workers; once the old ones are gone, only the new weights serve.
        nginx.wait_for_new_workers(&workers).await;
        let (to_stable, to_canary) = tally(&get_many(nginx.listen, REQUESTS).await);
        match weight {
            0 => assert_eq!(to_canary, 0, "the canary got requests at 0%"),
            100 => assert_eq!(to_stable, 0, "the stable version got requests at 100%"),
            w => {
                let share = to_canary as f64 / REQUESTS as f64 * 100.0;
                assert!(
                    (share - f64::from(w)).abs() <= 10.0,
                    "at {w}% the canary got {to_canary} of {REQUESTS} requests"
                );
            }
        }
    }
    // Nothing but the upstream file and NGINX's own files is left in the directory: the
    // temporary files were renamed into place.
    let leftovers: Vec<_> = fs::read_dir(nginx.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("canary") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reload_command_restores_the_file() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, router) = start(&stable, &canary).await;
    set_and_verify(&router, 10).await.unwrap();
    let before = fs::read(&nginx.upstream_file).unwrap();

    let broken = NginxRouter::new(&spec(
        nginx.upstream_file.clone(),
        &stable,
        &canary.addr.to_string(),
        vec!["false".to_owned()],
    ))
    .unwrap();
    let err = broken.set_canary_weight(50).await.unwrap_err();
    match &err {
        Error::Unavailable {
            component: "nginx",
            address,
            ..
        } => assert_eq!(address, &nginx.upstream_file.display().to_string()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let text = chain(&err);
    assert!(text.contains("previous content was put back"), "{text}");
    assert!(text.contains("`false` exited with code 1"), "{text}");
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);
    assert_eq!(fs::read(&nginx.upstream_file).unwrap(), before);
    assert_eq!(broken.canary_weight().await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_nginx_rejects_is_not_loaded_and_the_file_is_restored() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, router) = start(&stable, &canary).await;
    set_and_verify(&router, 25).await.unwrap();
    let before = fs::read(&nginx.upstream_file).unwrap();

    // A canary address NGINX refuses: policy validation cannot know the port is bad.
    let rejected = router_for(&GatewaySpec::Nginx(spec(
        nginx.upstream_file.clone(),
        &stable,
        "127.0.0.1:99999",
        nginx.reload_command(),
    )))
    .unwrap()
    .expect("not a Kubernetes gateway");
    let err = set_and_verify(rejected.as_ref(), 50).await.unwrap_err();
    let text = chain(&err);
    assert!(
        matches!(
            err,
            Error::Unavailable {
                component: "nginx",
                ..
            }
        ),
        "{err:?}"
    );
    // NGINX's own words, from the configuration test run before the reload.
    assert!(
        text.contains("invalid port in upstream \"127.0.0.1:99999\""),
        "{text}"
    );
    assert!(text.contains("previous content was put back"), "{text}");
    assert_eq!(fs::read(&nginx.upstream_file).unwrap(), before);
    assert_eq!(router.canary_weight().await.unwrap(), 25);

    // NGINX still serves, with the weights it had.
    let (to_stable, to_canary) = tally(&get_many(nginx.listen, 100).await);
    assert!(to_stable > 0 && to_canary > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_hangs_is_killed_and_a_first_file_is_removed() {
    let stable = Backend::start("stable").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upstream.conf");
    let mut hanging = spec(
        file.clone(),
        &stable,
        "127.0.0.1:9",
        vec!["sleep".to_owned(), "30".to_owned()],
    );
    hanging.timeout = Duration::from_millis(300);
    let router = NginxRouter::new(&hanging).unwrap();
    let err = router.set_canary_weight(10).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("`sleep` did not finish within 300ms and was killed"),
        "{text}"
    );
    // There was no file before: there is none after.
    assert!(!file.exists());
    let err = router.canary_weight().await.unwrap_err();
    assert!(chain(&err).contains("does not exist"), "{}", chain(&err));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_edited_by_hand_is_read_as_it_stands() {
    let stable = Backend::start("stable").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upstream.conf");
    let router = NginxRouter::new(&spec(
        file.clone(),
        &stable,
        "127.0.0.1:9",
        vec!["true".to_owned()],
    ))
    .unwrap();
    let s = stable.addr;
    fs::write(
        &file,
        format!("upstream app {{\n  server {s} weight=3 max_fails=2;\n  server 127.0.0.1:9;\n}}\n"),
    )
    .unwrap();
    assert_eq!(router.canary_weight().await.unwrap(), 25);

    fs::write(&file, format!("upstream app {{ server {s}; }}\n")).unwrap();
    let err = router.canary_weight().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mismatch {
                component: "nginx",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        chain(&err).contains("has no server 127.0.0.1:9"),
        "{}",
        chain(&err)
    );

    fs::write(
        &file,
        format!("upstream app {{ server {s} down; server 127.0.0.1:9 down; }}\n"),
    )
    .unwrap();
    let err = router.canary_weight().await.unwrap_err();
    assert!(chain(&err).contains("traffic nowhere"), "{}", chain(&err));
}

/// Issue 12: a reload that NGINX never applied (its master paused: `nginx -s reload` only
/// signals it and exits 0) must not be a confirmed weight. The workers keep serving the
/// weights NGINX had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_the_master_never_applied_is_not_a_confirmed_weight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, mut spec) = start_spec(&stable, &canary).await;
    // The wait for NGINX to serve the new file is the router's timeout.
    spec.timeout = Duration::from_secs(2);
    let router = NginxRouter::new(&spec).unwrap();
    set_and_verify(&router, 10).await.unwrap();
    let file_at_10 = fs::read(&nginx.upstream_file).unwrap();

    nginx.signal_master(nix::sys::signal::Signal::SIGSTOP);
    let outcome = set_and_verify(&router, 50).await;
    let read_back = router.canary_weight().await;
    nginx.signal_master(nix::sys::signal::Signal::SIGCONT);

    let err = outcome.expect_err("a weight NGINX does not serve was confirmed");
    let text = chain(&err);
    assert!(
        matches!(
            err,
            Error::Unavailable {
                component: "nginx",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("still serves"), "{text}");
    assert!(text.contains("canary 10 %"), "{text}");
    assert!(text.contains("previous content was put back"), "{text}");
    assert_eq!(fs::read(&nginx.upstream_file).unwrap(), file_at_10);
    // What is read back afterwards is what NGINX serves, not what was written.
    assert_eq!(read_back.unwrap(), 10);
    // Once the master runs again, a change is confirmed as before.
    set_and_verify(&router, 50)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
}

/// A reload command that exits 0 without reloading anything (a wrapper that does nothing,
/// `systemctl reload` of a unit that is not this NGINX): no confirmed weight, the file is
/// put back, and the weight read back is the one NGINX serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_command_that_reloads_nothing_is_not_a_confirmed_weight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, mut spec) = start_spec(&stable, &canary).await;
    let address = spec.weight_probe.unwrap();
    let router = NginxRouter::new(&spec).unwrap();
    set_and_verify(&router, 25).await.unwrap();
    let before = fs::read(&nginx.upstream_file).unwrap();
    let served = probe(address).await;

    spec.reload = vec!["true".to_owned()];
    spec.timeout = Duration::from_secs(1);
    let idle = NginxRouter::new(&spec).unwrap();
    let err = set_and_verify(&idle, 50).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("still serves an earlier configuration (canary 25 %)"),
        "{text}"
    );
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);
    assert_eq!(fs::read(&nginx.upstream_file).unwrap(), before);
    assert_eq!(probe(address).await, served);
    assert_eq!(idle.canary_weight().await.unwrap(), 25);
}

/// A reload that cannot be given `-t` (here the classic `kill -HUP $(cat nginx.pid)`; `nginx
/// -s reload` would parse the file itself first): the master rejects the new
/// configuration, logs it and keeps the old one; the router finds out from the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_the_master_rejects_behind_a_wrapper_is_not_a_confirmed_weight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, mut spec) = start_spec(&stable, &canary).await;
    set_and_verify(&NginxRouter::new(&spec).unwrap(), 10)
        .await
        .unwrap();
    let before = fs::read(&nginx.upstream_file).unwrap();

    spec.reload = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("kill -HUP $(cat {}/nginx.pid)", nginx.dir.path().display()),
    ];
    spec.canary = "127.0.0.1:99999".to_owned();
    spec.timeout = Duration::from_secs(2);
    let rejected = NginxRouter::new(&spec).unwrap();
    assert!(rejected.config_test_command().is_none());
    let err = set_and_verify(&rejected, 50).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("still serves an earlier configuration (canary 10 %)"),
        "{text}"
    );
    assert_eq!(fs::read(&nginx.upstream_file).unwrap(), before);
    let log = fs::read_to_string(nginx.dir.path().join("error.log")).unwrap();
    assert!(log.contains("invalid port in upstream"), "{log}");
}

/// Reading back asks NGINX and checks the file against its answer: a file changed without a
/// reload (or a reload that has not happened yet) is neither what NGINX serves nor
/// something the probe can vouch for, so it is a mismatch, never the file's weight nor the
/// answered one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_without_a_reload_is_a_mismatch_not_a_weight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, spec) = start_spec(&stable, &canary).await;
    let router = NginxRouter::new(&spec).unwrap();
    set_and_verify(&router, 25).await.unwrap();
    let mut file_only = spec.clone();
    file_only.weight_probe = None;
    let file_router = NginxRouter::new(&file_only).unwrap();
    for (what, text) in [
        ("a file without the probe", file_router.render(100)),
        ("a file of another generation", router.render(100)),
        ("the same weights, another generation", router.render(25)),
    ] {
        fs::write(&nginx.upstream_file, &text).unwrap();
        let file_weight = if what.starts_with("the same") {
            25
        } else {
            100
        };
        assert_eq!(file_router.canary_weight().await.unwrap(), file_weight);
        let err = router.canary_weight().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Mismatch {
                    component: "nginx",
                    ..
                }
            ),
            "{what}: {err:?}"
        );
        assert!(
            chain(&err).contains("not what canary wrote"),
            "{what}: {}",
            chain(&err)
        );
    }
    // NGINX still serves 25 %: a change writes canary's file again and is confirmed.
    assert_eq!(probe(spec.weight_probe.unwrap()).await.canary, 25);
    set_and_verify(&router, 25).await.unwrap();
    assert!(
        router.describe().contains("weight probe at"),
        "{}",
        router.describe()
    );

    // A probe nobody answers is an error, never a weight.
    let mut silent = spec.clone();
    silent.weight_probe = Some(format!("127.0.0.1:{}", free_port()).parse().unwrap());
    let err = NginxRouter::new(&silent)
        .unwrap()
        .canary_weight()
        .await
        .unwrap_err();
    assert!(chain(&err).contains("did not answer"), "{}", chain(&err));
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);
}

/// Finding 3 of the session-6b review: the probe's answer is text canary wrote next to the
/// upstream block, so an upstream edited by hand (or by configuration management) and
/// reloaded keeps answering the weight canary wrote. Whatever in the file differs from what
/// canary writes for the answered weights (a server `down`, another weight, a third server,
/// `backup`, a balancing method) must never be read back as a confirmed weight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_edited_behind_the_probe_is_never_a_confirmed_weight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, spec) = start_spec(&stable, &canary).await;
    let address = spec.weight_probe.unwrap();
    let router = NginxRouter::new(&spec).unwrap();
    let canary_line = format!("server {} weight=10;", canary.addr);
    let stable_line = format!("server {} weight=90;", stable.addr);
    let edits: Vec<(&str, String, String)> = vec![
        (
            "the canary down",
            canary_line.clone(),
            format!("server {} down;", canary.addr),
        ),
        (
            "another weight",
            canary_line.clone(),
            format!("server {} weight=50;", canary.addr),
        ),
        (
            "a third server",
            canary_line.clone(),
            format!("{canary_line}\n    server 127.0.0.1:9 weight=10;"),
        ),
        (
            "a backup server",
            stable_line.clone(),
            format!("server {} weight=90 backup;", stable.addr),
        ),
        (
            "a balancing method",
            canary_line.clone(),
            format!("{canary_line}\n    hash $remote_addr;"),
        ),
    ];
    for (what, from, to) in edits {
        set_and_verify(&router, 10)
            .await
            .unwrap_or_else(|e| panic!("{what}: set 10 %: {}", chain(&e)));
        let before = probe(address).await;
        let text = fs::read_to_string(&nginx.upstream_file).unwrap();
        assert!(text.contains(&from), "{what}: {text}");
        fs::write(&nginx.upstream_file, text.replace(&from, &to)).unwrap();
        let workers = nginx.workers();
        let reload = nginx.reload_command();
        let status = std::process::Command::new(&reload[0])
            .args(&reload[1..])
            .status()
            .unwrap();
        assert!(status.success(), "{what}: the reload by hand failed");
        nginx.wait_for_new_workers(&workers).await;
        // NGINX serves the edit; the probe still answers what canary wrote.
        assert_eq!(probe(address).await, before, "{what}");
        if what == "the canary down" {
            let (_, to_canary) = tally(&get_many(nginx.listen, 50).await);
            assert_eq!(to_canary, 0, "NGINX serves the canary nothing");
        }

        let read = router.canary_weight().await;
        let err = read.expect_err(&format!("{what}: read back as a confirmed weight"));
        assert!(
            matches!(
                err,
                Error::Mismatch {
                    component: "nginx",
                    ..
                }
            ),
            "{what}: {err:?}"
        );
        assert!(
            chain(&err).contains("not what canary wrote"),
            "{what}: {}",
            chain(&err)
        );
    }
    // A change puts canary's file back and is confirmed as before.
    set_and_verify(&router, 25)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
}

#[test]
fn probe_answers_that_are_not_canarys_are_refused() {
    assert_eq!(
        ProbeAnswer::parse("canary-weights upstream=app canary=10 stable=90 generation=1-2\n")
            .unwrap(),
        ProbeAnswer {
            upstream: "app".to_owned(),
            canary: 10,
            generation: "1-2".to_owned(),
        }
    );
    for bad in [
        "",
        "<html>502 Bad Gateway</html>",
        "canary-weights upstream=app canary=10 stable=80 generation=1",
        "canary-weights upstream=app canary=200 stable=0 generation=1",
        "canary-weights upstream=app canary=10 stable=90",
        "canary-weights canary=x",
    ] {
        assert!(ProbeAnswer::parse(bad).is_err(), "{bad:?}");
    }
}
