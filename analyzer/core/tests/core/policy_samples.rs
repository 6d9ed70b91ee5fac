//! `samples` checks in policies: the method and its options, and the digest of policies
//! written before the options existed.

use canary_core::policy::{CheckKind, Policy, SamplesMethod};

/// A small policy whose one check is a samples check with `options` added to its
/// `samples:` mapping.
fn with_samples_options(options: &str) -> String {
    format!(
        r#"
service: api
traffic: {{label: version, canary: canary, baseline: stable}}
metrics: {{prometheus: {{url: "http://localhost:9090"}}}}
rollout: {{min-requests: 0}}
checks:
  - name: cpu
    samples:
      query: 'avg by ({{{{label}}}}) (rate(cpu_seconds_total[1m]))'
{options}
    baseline: {{max-increase: 10%}}
"#
    )
}

fn samples_check(policy: &Policy) -> canary_core::policy::SamplesCheck {
    match &policy.checks[0].kind {
        CheckKind::Samples(samples) => samples.clone(),
        other => panic!("not a samples check: {other:?}"),
    }
}

/// Policies with samples checks written before `method` and `max-autocorrelation` existed
/// keep their digest: a rollout started before the upgrade resumes after it. (The digests
/// were computed by the code before the options were added.)
#[test]
fn samples_options_left_at_their_defaults_keep_the_digest() {
    // `policies/payments.yaml` as it was then (it has a weight probe since).
    let payments = Policy::from_yaml(
        include_str!("fixtures/payments-before-samples-options.yaml"),
        "payments.yaml",
    )
    .unwrap();
    assert_eq!(payments.digest(), "fnv1a64:194fd74220e2146b");
    // `policies/search.yaml` as it was then (its gateway commands have changed since).
    let search = Policy::from_yaml(
        include_str!("fixtures/search-before-samples-options.yaml"),
        "search.yaml",
    )
    .unwrap();
    assert_eq!(search.digest(), "fnv1a64:1f0683f2200a1e71");
    // Writing the defaults out changes nothing either.
    let plain = Policy::from_yaml(&with_samples_options(""), "a.yaml").unwrap();
    let explicit = Policy::from_yaml(
        &with_samples_options("      method: sequential\n      max-autocorrelation: 0.9"),
        "b.yaml",
    )
    .unwrap();
    assert_eq!(plain.digest(), explicit.digest());
}

#[test]
fn the_default_is_the_sequential_method_and_mann_whitney_is_an_opt_in() {
    let plain = Policy::from_yaml(&with_samples_options(""), "a.yaml").unwrap();
    let check = samples_check(&plain);
    assert_eq!(check.method, SamplesMethod::Sequential);
    assert_eq!(check.max_autocorrelation, 0.9);

    let kayenta = Policy::from_yaml(
        &with_samples_options("      method: mann-whitney"),
        "b.yaml",
    )
    .unwrap();
    assert_eq!(samples_check(&kayenta).method, SamplesMethod::MannWhitney);
    // Opting in changes what is judged, so a rollout started without it does not resume
    // with it.
    assert_ne!(plain.digest(), kayenta.digest());

    let memory = Policy::from_yaml(
        &with_samples_options("      max-autocorrelation: 0.99"),
        "c.yaml",
    )
    .unwrap();
    assert_eq!(samples_check(&memory).max_autocorrelation, 0.99);
    assert_ne!(plain.digest(), memory.digest());
}

#[test]
fn bad_samples_options_name_the_field_and_what_was_expected() {
    for (options, path, expected) in [
        (
            "      method: wilcoxon",
            "checks[0].samples.method",
            "expected `sequential`",
        ),
        (
            "      max-autocorrelation: 1",
            "checks[0].samples.max-autocorrelation",
            "from 0 to 0.99",
        ),
        (
            "      max-autocorrelation: -0.5",
            "checks[0].samples.max-autocorrelation",
            "from 0 to 0.99",
        ),
        (
            "      max-autocorrelation: lots",
            "checks[0].samples.max-autocorrelation",
            "expected a number",
        ),
        (
            "      method: mann-whitney\n      max-autocorrelation: 0.5",
            "checks[0].samples.max-autocorrelation",
            "assumption of the sequential method",
        ),
    ] {
        let error =
            Policy::from_yaml(&with_samples_options(options), "bad.yaml").expect_err(options);
        let problem = error
            .problems
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("{options}: no problem at {path}: {error}"));
        assert!(
            problem.message.contains(expected),
            "{options}: {}",
            problem.message
        );
        assert!(problem.line.is_some(), "{options}: the line is named");
    }
}
