//! `HaproxyRouter` against a real HAProxy 2.6 (`/usr/sbin/haproxy`), started per test.

use std::time::Duration;

use async_trait::async_trait;
use canary_core::policy::{
    AclReads, GatewaySpec, HaproxyRouteAcl, HaproxySpec, SocketAddress, StepRoute,
};
use canary_core::ports::{TrafficRouter, set_and_verify, set_and_verify_route};
use canary_core::{Error, ExitCode};
use canary_gateways::{HaproxyRouter, ServerWeights, router_for};

use crate::support::{Backend, Haproxy, chain, get_many, get_many_with, tally};

fn spec(socket: SocketAddress, backend: &str, canary: &str, stable: &str) -> HaproxySpec {
    HaproxySpec {
        socket,
        backend: backend.to_owned(),
        canary_server: canary.to_owned(),
        stable_server: stable.to_owned(),
        route_acl: None,
    }
}

fn router(haproxy: &Haproxy) -> HaproxyRouter {
    HaproxyRouter::new(&spec(haproxy.unix_address(), "app", "canary", "stable"))
        .expect("valid names")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_set_and_read_back_exactly_over_the_unix_socket() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start(&stable, &canary, false).await;
    let router = router(&haproxy);

    for weight in [10u8, 25, 50, 100, 0] {
        set_and_verify(&router, weight)
            .await
            .unwrap_or_else(|e| panic!("set {weight}%: {}", chain(&e)));
        assert_eq!(router.canary_weight().await.unwrap(), weight);
        assert_eq!(
            router.server_weights().await.unwrap(),
            ServerWeights {
                canary: u32::from(weight),
                stable: 100 - u32::from(weight),
            }
        );
        // What another operator sees on the socket agrees.
        let answer = haproxy.runtime_command("get weight app/canary");
        assert!(
            answer.starts_with(&format!("{weight} (initial 1)")),
            "{answer:?}"
        );
    }
    // Setting the weight it already has is not an error.
    set_and_verify(&router, 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_runtime_api_works_the_same() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start(&stable, &canary, true).await;
    let address = haproxy.tcp_socket.expect("tcp socket").to_string();
    let spec = GatewaySpec::Haproxy(spec(
        SocketAddress::Tcp(address.clone()),
        "app",
        "canary",
        "stable",
    ));
    let router = router_for(&spec)
        .expect("router")
        .expect("not a Kubernetes gateway");
    assert!(router.describe().contains(&format!("tcp:{address}")));

    for weight in [10u8, 25, 50, 100, 0] {
        set_and_verify(router.as_ref(), weight)
            .await
            .unwrap_or_else(|e| panic!("set {weight}% over TCP: {}", chain(&e)));
        assert_eq!(router.canary_weight().await.unwrap(), weight);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_haproxy_splits_by_weight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start(&stable, &canary, false).await;
    let router = router(&haproxy);
    const REQUESTS: usize = 400;

    for weight in [25u8, 50] {
        set_and_verify(&router, weight).await.unwrap();
        let (to_stable, to_canary) = tally(&get_many(haproxy.frontend, REQUESTS).await);
        let share = to_canary as f64 / REQUESTS as f64 * 100.0;
        // Weighted round robin is close to exact; the tolerance is generous on purpose.
        assert!(
            (share - f64::from(weight)).abs() <= 10.0,
            "at {weight}% the canary got {to_canary} of {REQUESTS} requests ({to_stable} to stable)"
        );
    }
    // At the ends nothing may leak: weight 0 takes a server out of the rotation.
    set_and_verify(&router, 0).await.unwrap();
    let (_, to_canary) = tally(&get_many(haproxy.frontend, 100).await);
    assert_eq!(to_canary, 0, "the canary got requests at 0%");
    set_and_verify(&router, 100).await.unwrap();
    let (to_stable, _) = tally(&get_many(haproxy.frontend, 100).await);
    assert_eq!(to_stable, 0, "the stable version got requests at 100%");
    // The backends' own counters agree with what came back through HAProxy.
    assert_eq!(stable.hits() + canary.hits(), 2 * REQUESTS as u64 + 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_backend_or_server_is_a_clear_error() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start(&stable, &canary, false).await;

    let no_backend =
        HaproxyRouter::new(&spec(haproxy.unix_address(), "nope", "canary", "stable")).unwrap();
    let err = no_backend.set_canary_weight(10).await.unwrap_err();
    let text = chain(&err);
    assert!(
        matches!(
            err,
            Error::Unavailable {
                component: "haproxy",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("No such backend."), "{text}");
    assert!(text.contains("nope/"), "{text}");
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);
    let err = no_backend.canary_weight().await.unwrap_err();
    assert!(chain(&err).contains("No such backend."), "{}", chain(&err));

    let no_server =
        HaproxyRouter::new(&spec(haproxy.unix_address(), "app", "ghost", "stable")).unwrap();
    let text = chain(&no_server.set_canary_weight(10).await.unwrap_err());
    assert!(text.contains("No such server."), "{text}");
    assert!(text.contains("app/ghost"), "{text}");
    let text = chain(&no_server.canary_weight().await.unwrap_err());
    assert!(
        text.contains("No such server.") && text.contains("app/ghost"),
        "{text}"
    );
    // The known server was raised before the unknown one failed: traffic still flows.
    let (to_stable, _) = tally(&get_many(haproxy.frontend, 10).await);
    assert!(to_stable > 0);

    // Names that could smuggle a second command into the socket never reach it.
    for bad in ["app;shutdown", "app canary", "app\nshow info", ""] {
        let err =
            HaproxyRouter::new(&spec(haproxy.unix_address(), bad, "canary", "stable")).unwrap_err();
        assert!(err.to_string().contains("not a valid name"), "{err}");
        let err = router_for(&GatewaySpec::Haproxy(spec(
            haproxy.unix_address(),
            "app",
            bad,
            "stable",
        )))
        .err()
        .expect("refused");
        assert_eq!(err.exit_code(), ExitCode::BadInput);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_socket_is_unavailable_and_names_the_socket() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let mut haproxy = Haproxy::start(&stable, &canary, true).await;
    let unix = router(&haproxy);
    let tcp_address = haproxy.tcp_socket.unwrap().to_string();
    let tcp = HaproxyRouter::new(&spec(
        SocketAddress::Tcp(tcp_address.clone()),
        "app",
        "canary",
        "stable",
    ))
    .unwrap();
    set_and_verify(&unix, 10).await.unwrap();

    haproxy.process.kill();

    let socket = haproxy.unix_socket.display().to_string();
    for err in [
        unix.set_canary_weight(0).await.unwrap_err(),
        unix.canary_weight().await.unwrap_err(),
    ] {
        match &err {
            Error::Unavailable {
                component: "haproxy",
                address,
                ..
            } => assert_eq!(address, &format!("unix:{socket}")),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let text = chain(&err);
        assert!(text.contains(&socket), "{text}");
        assert!(text.contains("cannot connect"), "{text}");
        assert_eq!(err.exit_code(), ExitCode::Infrastructure);
    }
    let err = tcp.set_canary_weight(0).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable { component: "haproxy", address, .. } if address == &format!("tcp:{tcp_address}")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    // Accepts, reads, and never answers.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let router = HaproxyRouter::new(&spec(
        SocketAddress::Unix(path.clone()),
        "app",
        "canary",
        "stable",
    ))
    .unwrap()
    .with_timeout(Duration::from_millis(300));
    let err = router.set_canary_weight(10).await.unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(text.contains("no answer to `set server app/"), "{text}");
    assert!(text.contains("within 300ms"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    silent.abort();
}

/// A router that lets someone else change the canary's weight right after each change, the
/// way a second operator on the runtime API would.
struct Meddled<'a> {
    inner: HaproxyRouter,
    haproxy: &'a Haproxy,
}

#[async_trait]
impl TrafficRouter for Meddled<'_> {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        self.inner.set_canary_weight(weight).await?;
        let answer = self
            .haproxy
            .runtime_command("set server app/canary weight 77");
        assert_eq!(answer.trim(), "", "the meddling command failed");
        Ok(())
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        self.inner.canary_weight().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_changed_behind_our_back_is_caught_by_set_and_verify() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start(&stable, &canary, false).await;
    let meddled = Meddled {
        inner: router(&haproxy),
        haproxy: &haproxy,
    };
    let err = set_and_verify(&meddled, 10).await.unwrap_err();
    match &err {
        // canary 77 against stable 90: 46 %.
        Error::Mismatch { message, .. } => {
            assert!(
                message.contains("10 % was set but 46 % was read back"),
                "{message}"
            );
            assert!(message.contains("backend app"), "{message}");
        }
        other => panic!("expected Mismatch, got {other:?}"),
    }
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);

    // Both servers at 0 sends traffic nowhere: never what canary set, so it is reported.
    haproxy.runtime_command("set server app/stable weight 0");
    haproxy.runtime_command("set server app/canary weight 0");
    let err = router(&haproxy).canary_weight().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mismatch {
                component: "haproxy",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(chain(&err).contains("traffic nowhere"), "{}", chain(&err));
    // And setting a weight again repairs it.
    set_and_verify(&router(&haproxy), 0).await.unwrap();
}

/// The `use-server` rule docs/policy-reference.md tells users to put in haproxy.cfg, with the
/// test's server name and ACL file: the test runs what the page shows.
fn documented_rule(reads: &str) -> String {
    let page = include_str!("../../../docs/policy-reference.md");
    let line = page
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("use-server checkout-canary if { req.hdr(x-canary)")
        })
        .expect("docs/policy-reference.md shows the `use-server` rule for header steps");
    format!(
        "{}\n",
        line.replace("/etc/haproxy/checkout-canary.acl", "{dir}/canary.acl")
            .replace("use-server checkout-canary", "use-server canary")
            .replace("req.hdr(x-canary)", reads)
    )
}

fn acl_router(haproxy: &Haproxy, reads: AclReads) -> HaproxyRouter {
    let mut spec = spec(haproxy.unix_address(), "app", "canary", "stable");
    spec.route_acl = Some(HaproxyRouteAcl {
        file: haproxy.dir().join("canary.acl").display().to_string(),
        reads,
    });
    HaproxyRouter::new(&spec).expect("valid names")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_route_acl_sends_only_requests_with_the_header_to_the_canary() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start_with_rules(
        &stable,
        &canary,
        false,
        &documented_rule("req.hdr(x-canary)"),
    )
    .await;
    let router = acl_router(&haproxy, AclReads::Header("x-canary".to_owned()));
    router
        .preflight()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    set_and_verify(&router, 10).await.unwrap();

    // A value with a space and a semicolon, which the runtime API's command line splits on.
    let route = StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "beta; tester 1".to_owned(),
    };
    set_and_verify_route(&router, &route)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        haproxy
            .runtime_command("get weight app/canary")
            .split_whitespace()
            .next(),
        Some("0")
    );
    let with = get_many_with(haproxy.frontend, 20, "X-Canary: beta; tester 1\r\n").await;
    assert_eq!(
        tally(&with),
        (0, 20),
        "matching requests all reach the canary"
    );
    let without = get_many(haproxy.frontend, 20).await;
    assert_eq!(tally(&without), (20, 0), "the rest all reach stable");
    let other = get_many_with(haproxy.frontend, 10, "X-Canary: beta\r\n").await;
    assert_eq!(tally(&other), (10, 0), "another value is not the step's");
    assert_eq!(router.read_back().await.unwrap(), (0, Some(route.clone())));

    // Someone empties the ACL: the read-back says so (drift), and setting the route repairs it.
    haproxy.runtime_command(&format!("clear acl {}/canary.acl", haproxy.dir().display()));
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(&router, &route).await.unwrap();

    // Two patterns are no step canary writes: an error, not a route.
    haproxy.runtime_command(&format!(
        "add acl {}/canary.acl other",
        haproxy.dir().display()
    ));
    let err = router.read_back().await.unwrap_err();
    assert!(
        chain(&err).contains("which no step of canary writes"),
        "{}",
        chain(&err)
    );

    // A rollback (weight 0) empties the ACL: the header reaches stable again.
    set_and_verify(&router, 0).await.unwrap();
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    let with = get_many_with(haproxy.frontend, 10, "X-Canary: beta; tester 1\r\n").await;
    assert_eq!(tally(&with), (10, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_route_acl_carries_a_cookie_step() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start_with_rules(
        &stable,
        &canary,
        false,
        &documented_rule("req.cook(canary)"),
    )
    .await;
    let router = acl_router(&haproxy, AclReads::Cookie("canary".to_owned()));
    router
        .preflight()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let route = StepRoute::Cookie {
        name: "canary".to_owned(),
    };
    set_and_verify_route(&router, &route).await.unwrap();
    let with = get_many_with(haproxy.frontend, 10, "Cookie: a=1; canary=always\r\n").await;
    assert_eq!(tally(&with), (0, 10));
    let never = get_many_with(haproxy.frontend, 10, "Cookie: canary=never\r\n").await;
    assert_eq!(tally(&never), (10, 0));
    // The promotion (100) empties the ACL too, and the canary takes everything by weight.
    set_and_verify(&router, 100).await.unwrap();
    assert_eq!(router.read_back().await.unwrap(), (100, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_route_acl_missing_or_reading_a_cookie_is_refused_at_preflight() {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    // No rule reads the file: HAProxy never loaded it.
    let plain = Haproxy::start(&stable, &canary, false).await;
    let router = acl_router(&plain, AclReads::Header("x-canary".to_owned()));
    let err = router.preflight().await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{}", chain(&err));
    assert!(
        chain(&err).contains("has no ACL loaded from"),
        "{}",
        chain(&err)
    );
    // The weights are the configuration's: nothing moved.
    assert!(
        plain
            .runtime_command("get weight app/canary")
            .starts_with("1 (initial 1)")
    );

    // The ACL reads a cookie; the policy says a header.
    let cookie = Haproxy::start_with_rules(
        &stable,
        &canary,
        false,
        &documented_rule("req.cook(canary)"),
    )
    .await;
    let router = acl_router(&cookie, AclReads::Header("x-canary".to_owned()));
    let err = router.preflight().await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{}", chain(&err));
    assert!(chain(&err).contains("reads `req.cook`"), "{}", chain(&err));
    // A named ACL (`acl NAME FETCH -f FILE`) is found the same way.
    let named = Haproxy::start_with_rules(
        &stable,
        &canary,
        false,
        "    acl to_canary req.hdr(x-canary) -f {dir}/canary.acl\n    use-server canary if to_canary\n",
    )
    .await;
    acl_router(&named, AclReads::Header("x-canary".to_owned()))
        .preflight()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
}
