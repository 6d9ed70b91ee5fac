//! `canary policy explain`: the exact PromQL each check runs, one query per check.

use crate::util::canary;

#[test]
fn explain_prints_one_query_per_check_with_the_window_said() {
    let run = canary(&["policy", "explain", "policies/checkout.yaml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let out = &run.stdout;
    assert!(
        out.contains("The window [300s] below is\n# the one 5m after the start"),
        "{out}"
    );
    assert!(out.contains("one instant query per check"), "{out}");
    // And what `analyze` over a past window sends instead, for the counter checks only.
    assert!(
        out.contains(
            "# errors: `canary analyze` over a past window sends instead, once for all ticks,"
        ),
        "{out}"
    );
    assert_eq!(
        out.matches("over a past window sends instead").count(),
        2,
        "error-rate and latency, not the query check: {out}"
    );
    // Each criterion as a sentence in the policy's units, before its query.
    for sentence in [
        "# errors: The canary's error rate must not be higher than the baseline's",
        "# latency: The canary's p95 latency must stay at or below ",
        "# no-restarts: The query's value for the canary must stay at or below 0; it is rolled back at the tick it is above.",
    ] {
        assert!(out.contains(sentence), "{sentence}\n{out}");
    }
    assert!(
        !out.contains("0.3s") && !out.contains("0.01 "),
        "fractions and seconds:\n{out}"
    );
    let queries: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(queries.len(), 3, "one query per check:\n{out}");
    assert_eq!(
        queries[0],
        "label_replace(sum by (version) (increase(http_requests_total{job=\"checkout\", namespace=\"shop\", version=~\"canary|stable\"}[300s])), \"canary_series\", \"requests\", \"\", \"\") \
         or label_replace(sum by (version) (increase(http_requests_total{job=\"checkout\", namespace=\"shop\", version=~\"canary|stable\", code=~\"5..\"}[300s])), \"canary_series\", \"errors\", \"\", \"\")"
    );
    assert_eq!(
        queries[1],
        "sum by (le, version) (increase(http_request_duration_seconds_bucket{job=\"checkout\", namespace=\"shop\", version=~\"canary|stable\"}[300s]))"
    );
    assert_eq!(
        queries[2],
        "sum(increase(kube_pod_container_status_restarts_total{namespace=\"shop\", pod=~\"checkout-canary-.*\"}[300s])) or vector(0)"
    );
    let run = canary(&[
        "policy",
        "explain",
        "policies/checkout.yaml",
        "--window",
        "30m",
    ]);
    assert!(run.stdout.contains("[1800s]"), "{}", run.all());
}

#[test]
fn explain_of_every_shipped_policy_works() {
    for policy in [
        "policies/checkout.yaml",
        "policies/ml-api.yaml",
        "policies/payments.yaml",
        "policies/search.yaml",
    ] {
        let run = canary(&["policy", "explain", policy]);
        assert_eq!(run.code, 0, "{policy}\n{}", run.all());
        assert!(
            !run.stdout.contains("{{"),
            "every variable is filled in: {}",
            run.stdout
        );
    }
    let run = canary(&["policy", "explain", "policies/nope.yaml"]);
    assert_eq!(run.code, 2, "{}", run.all());
}

/// With `gateway.replica-count`, explain says what each step gets in whole pods.
#[test]
fn explain_says_the_pods_each_step_of_a_replica_count_gateway_gets() {
    let text = std::fs::read_to_string(crate::util::root().join("policies/checkout.yaml"))
        .expect("policies/checkout.yaml");
    let start = text.find("\ngateway:").expect("a gateway section");
    let end = text[start + 1..]
        .find("\n\n")
        .map_or(text.len(), |i| start + 1 + i);
    let policy = format!(
        "{}\ngateway:\n  replica-count:\n    stable-deployment: checkout-stable\n    canary-deployment: checkout-canary\n    replicas: 8\n    namespace: shop\n{}",
        &text[..start],
        &text[end..]
    );
    let path = std::env::temp_dir().join(format!(
        "canary-explain-replicas-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, policy).unwrap();
    let run = canary(&["policy", "explain", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(run.code, 0, "{}", run.all());
    for line in [
        "#   10 % asked: 1 canary and 7 stable pods, 1 of 8 ready pods = 12.5 %",
        "#   25 % asked: 2 canary and 6 stable pods, 2 of 8 ready pods = 25 %",
        "#   100 % asked: 8 canary and 0 stable pods, 8 of 8 ready pods = 100 %",
    ] {
        assert!(run.stdout.contains(line), "{line}\n{}", run.stdout);
    }
}

/// Routed steps: lint lists them by what they route, explain says what each step sends the
/// canary and what a mirror's analysis cannot tell, and a router that cannot carry a routed
/// step is refused by lint, named (issue 18).
#[test]
fn lint_and_explain_describe_routed_steps_and_refuse_a_router_that_cannot() {
    let text = std::fs::read_to_string(crate::util::root().join("policies/checkout.yaml"))
        .expect("policies/checkout.yaml");
    let routed = text.replace(
        "steps: [10, 25, 50, 100]",
        r#"steps: [{header: {name: X-Canary, value: always}}, {mirror: {percent: 20}}, 10, 50, 100]"#,
    );
    assert_ne!(routed, text, "the shipped policy's steps moved");
    // The shipped policy's router is HAProxy, which sets weights only: refused. The same
    // steps on an HTTPRoute are fine.
    let on_http_route = routed.replace(
        &routed[routed.find("\ngateway:").unwrap()..routed.find("\nhooks:").unwrap()],
        "\ngateway:\n  http-route: {name: checkout, stable: checkout-stable, canary: checkout-canary}\n",
    );
    let path =
        std::env::temp_dir().join(format!("canary-explain-routed-{}.yaml", std::process::id()));
    std::fs::write(&path, &routed).unwrap();
    let refused = canary(&["policy", "lint", path.to_str().unwrap()]);
    std::fs::write(&path, &on_http_route).unwrap();
    let lint = canary(&["policy", "lint", path.to_str().unwrap()]);
    let explain = canary(&["policy", "explain", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);

    assert_eq!(lint.code, 0, "{}", lint.all());
    assert!(
        lint.stdout
            .contains("steps [header X-Canary=always, mirror 20 %, 10, 50, 100]"),
        "{}",
        lint.all()
    );
    assert_eq!(explain.code, 0, "{}", explain.all());
    for line in [
        "#   1. requests with header X-Canary: always (the rest to stable): the canary's share is the share of requests that match",
        "#   2. a mirror of 20 % of requests (stable answers every request): the canary's responses are dropped",
        "#   3. 10 % of requests",
    ] {
        assert!(explain.stdout.contains(line), "{line}\n{}", explain.stdout);
    }
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused.stderr.contains("rollout.steps[0]")
            && refused
                .stderr
                .contains("a `header` step needs `gateway.haproxy.route-acl`"),
        "{}",
        refused.all()
    );
}
