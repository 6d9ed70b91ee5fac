//! `NginxRouter` against a real NGINX (`/usr/sbin/nginx`, Debian's nginx-light), started
//! per test from a temporary prefix.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use canary_core::policy::{GatewaySpec, NginxSpec};
use canary_core::ports::{TrafficRouter, set_and_verify};
use canary_core::{Error, ExitCode};
use canary_gateways::{NginxRouter, router_for};

use crate::support::{Backend, Nginx, chain, get_many, tally};

fn spec(file: PathBuf, stable: &Backend, canary: &str, reload: Vec<String>) -> NginxSpec {
    NginxSpec {
        upstream_file: file,
        upstream: "app".to_owned(),
        canary: canary.to_owned(),
        stable: stable.addr.to_string(),
        reload,
        timeout: Duration::from_secs(30),
    }
}

/// NGINX in front of the two backends, its upstream file first written for 0 %.
async fn start(stable: &Backend, canary: &Backend) -> (Nginx, NginxRouter) {
    // The router renders the first file; NGINX starts from it.
    let draft = NginxRouter::new(&spec(
        PathBuf::from("unused"),
        stable,
        &canary.addr.to_string(),
        vec!["true".to_owned()],
    ))
    .unwrap();
    let nginx = Nginx::start(&draft.render(0)).await;
    let router = NginxRouter::new(&spec(
        nginx.upstream_file.clone(),
        stable,
        &canary.addr.to_string(),
        nginx.reload_command(),
    ))
    .unwrap();
    (nginx, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_written_reloaded_and_split_traffic() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let (nginx, router) = start(&stable, &canary).await;
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
