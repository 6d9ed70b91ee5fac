//! `canary policy lint | schema | explain`: check policy files, give editors their schema,
//! and show the exact PromQL a policy runs.

use std::path::{Path, PathBuf};

use canary_core::ExitCode;
use canary_core::policy::{
    CheckKind, GatewaySpec, HookAction, JsonMeasure, JsonTransport, MetricsSourceSpec, Policy,
    ProviderApi,
};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check policy files; every problem is printed as FILE:LINE:COLUMN: FIELD: MESSAGE,
    /// and what `canary rollout` would refuse or fail on as FILE: warning: FIELD: MESSAGE.
    Lint {
        /// The policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the policy file's JSON Schema (for editors: yaml-language-server and the like).
    Schema,
    /// Print, per check, the exact PromQL the policy runs at each tick (or, for a scrape
    /// source, the series it reads from the pages).
    Explain {
        /// The policy file.
        file: PathBuf,
        /// Render the queries as at this long after the analysis started (default: one
        /// step, `rollout.step-duration`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        window: Option<std::time::Duration>,
    },
}

impl PolicyCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Lint { files } => Ok(lint(&files)),
            PolicyCommand::Schema => {
                println!("{}", serde_json::to_string_pretty(&Policy::json_schema())?);
                Ok(ExitCode::Passed)
            }
            PolicyCommand::Explain { file, window } => {
                let policy = super::load_policy(&file)?;
                print!("{}", explain(&policy, window));
                Ok(ExitCode::Passed)
            }
        }
    }
}

/// Lints every file (not just up to the first bad one) and exits 2 if any is bad.
fn lint(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for file in files {
        let origin = file.display().to_string();
        let result = std::fs::read_to_string(file)
            .map_err(|err| format!("{origin}: cannot read: {err}"))
            .and_then(|text| Policy::from_yaml(&text, &origin).map_err(|err| err.to_string()))
            // A secret this environment holds that is too short to be redacted (issue 13).
            .and_then(|policy| {
                canary_core::secret::learn_secrets_of(&policy)
                    .map(|()| policy)
                    .map_err(|err| format!("{origin}: {err}"))
            });
        match result {
            Ok(policy) => {
                println!(
                    "ok {origin}: service {}, {} checks ({} criteria), steps [{}]",
                    policy.service,
                    policy.checks.len(),
                    policy.criteria_count(),
                    steps_in_brief(&policy)
                );
                // What a generic provider's checks can promise depends on what they read.
                for check in &policy.checks {
                    if let CheckKind::Json(json) = &check.kind {
                        println!("  {}: guarantee: {}", check.name, json.measure.guarantee());
                    }
                }
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                for warning in warnings(&policy, &cwd) {
                    eprintln!("{origin}: warning: {warning}");
                }
            }
            Err(problems) => {
                bad += 1;
                eprintln!("{problems}");
            }
        }
    }
    if bad == 0 {
        ExitCode::Passed
    } else {
        eprintln!("{bad} of {} policy files have problems", files.len());
        ExitCode::BadInput
    }
}

/// What a valid policy still cannot do: what `canary rollout` would refuse (no gateway) or
/// fail on at run time (a command that does not resolve). Warnings, not problems: the
/// policy is fine for `canary analyze`, and a command may exist only where the rollout runs.
fn warnings(policy: &Policy, cwd: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    if policy.gateway.is_none() {
        warnings.push(
            "gateway: none: `canary rollout` refuses this policy (nothing to shift traffic \
             with); `canary analyze` can use it. Add a `gateway` section to roll out \
             (docs/policy-reference.md)."
                .to_owned(),
        );
    }
    if let Some(warning) = nginx_probe_warning(policy) {
        warnings.push(warning);
    }
    let mut commands: Vec<(String, &[String])> = Vec::new();
    for (i, hook) in policy.hooks.iter().enumerate() {
        if let HookAction::Command(argv) = &hook.action {
            commands.push((format!("hooks[{i}].command"), argv));
        }
    }
    match &policy.gateway {
        Some(GatewaySpec::Command(spec)) => {
            commands.push(("gateway.command.set".to_owned(), &spec.set));
            if let Some(get) = &spec.get {
                commands.push(("gateway.command.get".to_owned(), get));
            }
        }
        Some(GatewaySpec::Nginx(spec)) => {
            commands.push(("gateway.nginx.reload".to_owned(), &spec.reload));
        }
        _ => {}
    }
    for (field, argv) in commands {
        if let Some(program) = argv.first()
            && let Err(why) = resolve_program(program, cwd)
        {
            warnings.push(format!("{field}: {why}"));
        }
    }
    if let MetricsSourceSpec::Json(spec) = &policy.metrics
        && let ProviderApi::Datadog = spec.api
    {
        // Pre-flight asks Datadog whether the metrics exist, and whether the errors query's
        // tags that the requests query filters on too match anything; its other tags (a
        // status class only errors carry) are not asked about, and one that matches nothing
        // reads as 0 errors.
        for (i, check) in policy.checks.iter().enumerate() {
            let CheckKind::Json(json) = &check.kind else {
                continue;
            };
            let Some(query) = &json.query else { continue };
            let text = query.render(|_| String::new(), |v| v.to_owned());
            if let [requests, errors] = &canary_metrics::datadog::split_queries(&text)[..] {
                let (r, e) = (
                    canary_metrics::datadog::scope_of(requests),
                    canary_metrics::datadog::scope_of(errors),
                );
                if r != e {
                    warnings.push(format!(
                        "checks[{i}].datadog.errors: its tags {{{}}} are not the requests query's {{{}}}: a tag the errors query filters on that matches nothing reads as 0 errors, not as no data (pre-flight asks Datadog about the errors query's tags whose keys the requests query filters on too, not about the others); try the query in Datadog",
                        e.unwrap_or_default().join(","),
                        r.unwrap_or_default().join(",")
                    ));
                }
            }
        }
    }
    // Datadog and CloudWatch publish datapoints late: with no lag, a step may be decided on
    // data that has not arrived.
    if let MetricsSourceSpec::Json(spec) = &policy.metrics
        && matches!(spec.api, ProviderApi::Datadog | ProviderApi::CloudWatch(_))
        && spec.lag.is_zero()
    {
        warnings.push(format!(
            "metrics.{}.lag: 0s: each tick reads data that may not have arrived yet, so a step can be decided without its last minutes' errors; leave the default or set the provider's delay (docs/metrics-sources.md)",
            spec.name()
        ));
    }
    // `errors-may-be-unlisted` takes away pre-flight's one defence against a misspelt errors
    // metric, which then reads as 0 errors: said at every lint.
    for (i, check) in policy.checks.iter().enumerate() {
        if let CheckKind::Json(json) = &check.kind
            && let Some(query) = &json.cloudwatch
            && query.errors_may_be_unlisted
            && let Some(errors) = query.metrics.iter().find(|m| m.what == "errors")
        {
            warnings.push(format!(
                "checks[{i}].cloudwatch.errors-may-be-unlisted: pre-flight does not ask whether {}/{} exists, so a misspelt name, namespace or dimension reads as 0 errors; check it in CloudWatch's console",
                query.namespace, errors.metric
            ));
        }
    }
    if let MetricsSourceSpec::Json(spec) = &policy.metrics
        && let ProviderApi::CloudWatch(_) = spec.api
        && policy.rollout.interval < std::time::Duration::from_secs(60)
    {
        warnings.push(format!(
            "rollout.interval: {}: CloudWatch keeps standard-resolution metrics per minute, so \
             ticks within a minute read the same datapoints again; use `interval: 1m` or more",
            humantime::format_duration(policy.rollout.interval)
        ));
    }
    // Datadog and CloudWatch make a minute's datapoints available minutes later (CloudWatch
    // ALB metrics typically 1–3 min): what the canary did in the last minutes before 100 % is
    // read only once it is there, so only a final soak that lasts that long judges it (a
    // review found this gap, 2026-12-01).
    if let MetricsSourceSpec::Json(spec) = &policy.metrics
        && matches!(spec.api, ProviderApi::Datadog | ProviderApi::CloudWatch(_))
        && policy
            .rollout
            .final_soak
            .is_none_or(|soak| soak < INGESTION_LAG)
    {
        warnings.push(format!(
            "rollout.final-soak: {}: {} makes datapoints available minutes after the fact, so \
             the canary's last minutes before 100 % are judged only during a final soak that \
             lasts that long; set `final-soak: 3m` or more (docs/metrics-sources.md)",
            policy.rollout.final_soak.map_or_else(
                || "none".to_owned(),
                |d| humantime::format_duration(d).to_string()
            ),
            spec.name()
        ));
    }
    if let MetricsSourceSpec::Json(spec) = &policy.metrics
        && let JsonTransport::Command(command) = &spec.transport
        && let Some(program) = command.run.first()
        && !program.source.contains("{{")
        && let Err(why) = resolve_program(&program.source, cwd)
    {
        warnings.push(format!("metrics.command.run: {why}"));
    }
    warnings
}

/// How late Datadog and CloudWatch datapoints may arrive, for the final-soak warning.
const INGESTION_LAG: std::time::Duration = std::time::Duration::from_secs(180);

/// An NGINX gateway without `weight-probe`: its weights are read back from the file canary
/// wrote, which is what NGINX serves only if the reload took effect. `nginx -s reload` exits 0
/// once it has signalled the master, so a reload that did not happen would go unnoticed.
fn nginx_probe_warning(policy: &Policy) -> Option<String> {
    match &policy.gateway {
        Some(GatewaySpec::Nginx(spec)) if spec.weight_probe.is_none() => Some(
            "gateway.nginx.weight-probe: none: weights are read back from the upstream file \
             canary writes, not from NGINX, so a reload that did not take effect (a stopped \
             master, a configuration NGINX rejected behind a reload wrapper) would leave NGINX \
             serving the old weight while the rollout counts evidence for the new one. Add \
             `weight-probe: 127.0.0.1:PORT` (a free local port) so that every weight is \
             confirmed from what NGINX serves (docs/reliability.md#weight-drift)."
                .to_owned(),
        ),
        _ => None,
    }
}

/// Finds `program` as `canary rollout` will when it runs it: a name with a `/` relative to
/// the working directory the rollout is started in (hooks are not run from the policy
/// file's directory), a bare name on `$PATH`. Says why not when it cannot.
fn resolve_program(program: &str, cwd: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = cwd.join(program);
        return if executable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(format!(
                "`{program}` is not an executable file (commands run from the working directory, here {}; chmod +x it or run it through a shell)",
                cwd.display()
            ))
        } else {
            Err(format!(
                "`{program}` does not exist relative to the working directory ({}); commands run from the directory `canary rollout` is started in, not the policy's: give a path from there or an absolute one",
                cwd.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| {
            format!(
                "`{program}` is not on $PATH here; install it where the rollout runs, or give its path"
            )
        })
}

/// What each of a check's criteria asks, as a sentence in the policy's units: `The canary's
/// p95 latency must stay at or below 300 ms; above 1 s it is rolled back at once.`
fn criterion_sentences(check: &canary_core::policy::CheckSpec) -> Vec<String> {
    use canary_core::judge::{pct, plain_num};

    let latency_seconds = check.slo.is_some_and(|slo| slo.max >= 1.0);
    let latency = |seconds: f64| {
        if latency_seconds {
            format!("{} s", plain_num(seconds))
        } else {
            format!("{} ms", plain_num(seconds * 1000.0))
        }
    };
    let (subject, say): (String, Box<dyn Fn(f64) -> String>) = match &check.kind {
        CheckKind::ErrorRate(_) => ("The canary's error rate".to_owned(), Box::new(pct)),
        CheckKind::Latency(l) => (
            format!("The canary's p{} latency", plain_num(l.quantile * 100.0)),
            Box::new(latency),
        ),
        CheckKind::Query(_) => (
            "The query's value for the canary".to_owned(),
            Box::new(plain_num),
        ),
        CheckKind::Samples(_) => ("The canary's samples".to_owned(), Box::new(plain_num)),
        CheckKind::Json(json) => match &json.measure {
            JsonMeasure::Counts { .. } => ("The canary's error rate".to_owned(), Box::new(pct)),
            JsonMeasure::Percentile { quantile, .. } => (
                format!(
                    "The canary's p{} latency, as the provider computes it,",
                    plain_num(quantile * 100.0)
                ),
                Box::new(latency),
            ),
            JsonMeasure::Value { .. } => (
                "The provider's value for the canary".to_owned(),
                Box::new(plain_num),
            ),
        },
    };
    let mut sentences = Vec::new();
    if let Some(slo) = check.slo {
        sentences.push(match slo.rollback_above {
            Some(above) => format!(
                "{subject} must stay at or below {} (judged at each step's end); above {} it is rolled back at once.",
                say(slo.max),
                say(above)
            ),
            // A query's value is read, not estimated: above the bound is enough.
            None if matches!(check.kind, CheckKind::Query(_))
                || matches!(&check.kind, CheckKind::Json(j) if !matches!(j.measure, JsonMeasure::Counts { .. })) =>
            {
                format!(
                    "{subject} must stay at or below {}; it is rolled back at the tick it is above.",
                    say(slo.max)
                )
            }
            None => format!(
                "{subject} must stay at or below {}; it is rolled back once it is above with confidence.",
                say(slo.max)
            ),
        });
    }
    if let Some(baseline) = check.baseline {
        let by = if baseline.max_increase <= 1e-9 {
            "at all".to_owned()
        } else {
            format!("by more than {}", pct(baseline.max_increase))
        };
        let sentence = match &check.kind {
            CheckKind::ErrorRate(_) | CheckKind::Json(_) => format!(
                "The canary's error rate must not be higher than the baseline's {by}; it is rolled back at the tick the evidence says so, in any step."
            ),
            CheckKind::Latency(l) => format!(
                "The share of canary requests slower than {} must not be higher than the baseline's {by}; it is rolled back at the tick the evidence says so, in any step.",
                match baseline.slow_above {
                    Some(bound) => latency(bound),
                    None => format!("the baseline's p{}", plain_num(l.quantile * 100.0)),
                }
            ),
            CheckKind::Samples(s) => format!(
                "The canary's samples must not be {} than the baseline's by more than {} of the baseline's level.",
                if s.higher_is_worse { "higher" } else { "lower" },
                pct(baseline.max_increase)
            ),
            CheckKind::Query(_) => {
                format!("The query's value must not be worse than the baseline's {by}.")
            }
        };
        sentences.push(sentence);
    }
    sentences
}

/// What each check queries, as PromQL comments (`#`) and queries, so the output can be
/// pasted into Prometheus as it stands.
pub(crate) fn explain(policy: &Policy, window: Option<std::time::Duration>) -> String {
    use canary_metrics::queries::{self, QueryWindow};
    use std::fmt::Write as _;

    let window = window.unwrap_or(policy.rollout.step_duration);
    // The very window a tick at that time sends (the metrics crate rounds it down).
    let since = jiff::Timestamp::UNIX_EPOCH;
    let at = since + jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
    let query_window = QueryWindow::new(since, at, policy.rollout.interval);
    let seconds = query_window.window_seconds;
    let interval = humantime::format_duration(policy.rollout.interval);
    let mut out = String::new();
    let _ = writeln!(out, "# {}: {} checks", policy.service, policy.checks.len());
    if !policy.rollout.routes.is_empty() {
        // A routed step's share of traffic is whatever share of requests it routes: say what
        // each step sends to the canary, and what the analysis of a mirror can tell.
        let _ = writeln!(out, "# Steps:");
        for (index, &weight) in policy.rollout.steps.iter().enumerate() {
            match policy.rollout.route(index) {
                Some(route @ canary_core::policy::StepRoute::Mirror { .. }) => {
                    let _ = writeln!(
                        out,
                        "#   {}. {route}: the canary's responses are dropped; its errors and latency
                         #      are judged, what users would see of them is not",
                        index + 1
                    );
                }
                Some(route) => {
                    let _ = writeln!(
                        out,
                        "#   {}. {route}: the canary's share is the share of requests that match",
                        index + 1
                    );
                }
                None => {
                    let _ = writeln!(out, "#   {}. {weight} % of requests", index + 1);
                }
            }
        }
    }
    if let Some(GatewaySpec::ReplicaCount(spec)) = &policy.gateway {
        // Whole pods approximate the weights: say what each step will really get.
        let _ = writeln!(
            out,
            "# Traffic: ready pods of Deployments {} (stable) and {} (canary), {} in all; each step\n\
             # is the nearest whole number of pods, and the share achieved is what is reported:",
            spec.stable.name, spec.canary_deployment, spec.replicas
        );
        for &weight in &policy.rollout.steps {
            let (canary, stable) = canary_core::ports::replica_split(weight, spec.replicas);
            let achieved = canary_core::ports::AchievedShare {
                canary_ready: canary,
                stable_ready: stable,
            };
            let _ = writeln!(
                out,
                "#   {weight} % asked: {canary} canary and {stable} stable pods, {achieved}"
            );
        }
    }
    if let Some(GatewaySpec::Nginx(spec)) = &policy.gateway {
        match spec.weight_probe {
            Some(probe) => {
                let _ = writeln!(
                    out,
                    "# Gateway: NGINX upstream {} in {}; every weight is confirmed, and read back\n\
                     # at every tick, from what NGINX serves (weight probe http://{probe}/canary-weights).",
                    spec.upstream,
                    spec.upstream_file.display()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "# Gateway: NGINX upstream {} in {}; weights are read back from that file.",
                    spec.upstream,
                    spec.upstream_file.display()
                );
            }
        }
        if let Some(warning) = nginx_probe_warning(policy) {
            let _ = writeln!(out, "# warning: {warning}");
        }
    }
    match &policy.metrics {
        MetricsSourceSpec::Prometheus(spec) => {
            let url = spec.url.as_deref().map_or_else(
                || "(no url: give --prometheus URL)".to_owned(),
                canary_metrics::prometheus::strip_userinfo,
            );
            let _ = writeln!(
                out,
                "# Source: Prometheus at {url}. Every {interval}, one instant query per check\n\
                 # (POST /api/v1/query, time = the tick), each returning both versions."
            );
            if let Some(transport) = canary_metrics::prometheus::describe_transport(spec) {
                let _ = writeln!(out, "# Requests: {transport}.");
            }
            let _ = writeln!(
                out,
                "# Counts are cumulative since the analysis started. The window [{seconds}s] below is\n\
                 # the one {} after the start; at run time it is the whole seconds since the start,\n\
                 # rounded down, and grows with every tick (--window DURATION shows another).",
                humantime::format_duration(std::time::Duration::from_secs(seconds))
            );
            let window = query_window;
            for check in &policy.checks {
                let _ = writeln!(out);
                for sentence in criterion_sentences(check) {
                    let _ = writeln!(out, "# {}: {sentence}", check.name);
                }
                let _ = writeln!(
                    out,
                    "# {}: {}",
                    check.name,
                    queries::describe(check, &policy.traffic)
                );
                let _ = writeln!(
                    out,
                    "{}",
                    queries::check_query(check, &policy.traffic, window)
                );
                if let Some(metric) = queries::raw_samples_metric(check) {
                    let range_ms = i64::try_from(window.window_seconds)
                        .unwrap_or(i64::MAX / 1000)
                        .saturating_mul(1000);
                    let _ = writeln!(
                        out,
                        "# {}: `canary analyze` over a past window sends instead, once for all ticks,\n\
                         # the raw samples, and computes each tick's answer to the query above as\n\
                         # Prometheus does (--query-per-tick: the query above at every tick):\n\
                         # {}",
                        check.name,
                        queries::raw_samples_query(&metric, &policy.traffic, range_ms)
                    );
                }
            }
        }
        MetricsSourceSpec::Scrape(spec) => {
            let _ = writeln!(
                out,
                "# Source: direct scrapes every {interval}, no PromQL.\n\
                 # Canary: {}\n\
                 # Baseline: {}\n\
                 # Each instance's counter increases since the first scrape are summed per version\n\
                 # (a counter that goes down was reset: its new value counts).",
                spec.canary.join(", "),
                spec.baseline.join(", ")
            );
            let common: Vec<String> = policy
                .traffic
                .matchers
                .iter()
                .map(ToString::to_string)
                .collect();
            let common = common.join(", ");
            for check in &policy.checks {
                let line = match &check.kind {
                    CheckKind::ErrorRate(e) => {
                        let errors: Vec<String> =
                            e.error_matchers.iter().map(ToString::to_string).collect();
                        format!(
                            "requests: {}{{{common}}}; errors: those also matching {{{}}}",
                            e.requests_metric,
                            errors.join(", ")
                        )
                    }
                    CheckKind::Latency(l) => {
                        format!("buckets: {}_bucket{{{common}}} by le", l.histogram)
                    }
                    other => format!("a {} check cannot be read from a scrape", other.name()),
                };
                let _ = writeln!(out);
                for sentence in criterion_sentences(check) {
                    let _ = writeln!(out, "# {}: {sentence}", check.name);
                }
                let _ = writeln!(out, "# {}: {line}", check.name);
            }
        }
        MetricsSourceSpec::Json(spec) => explain_generic(&mut out, policy, spec, window),
    }
    out
}

/// The generic provider's part of `policy explain`: where requests go, then per check its
/// criteria, the guarantee its measure allows, the request of a tick `window` after the
/// start, and the JSONPaths read from the answer.
fn explain_generic(
    out: &mut String,
    policy: &Policy,
    spec: &canary_core::policy::JsonSourceSpec,
    window: std::time::Duration,
) {
    use std::fmt::Write as _;

    let interval = humantime::format_duration(policy.rollout.interval);
    let (what, how) = match &spec.transport {
        JsonTransport::Http(_) => (
            "an HTTP request",
            format!(
                "timeout {}, {} retries after a timeout, refused connection, 429 or 5xx",
                humantime::format_duration(spec.timeout),
                spec.retries
            ),
        ),
        JsonTransport::Command(_) => (
            "a command run (no shell; it prints JSON on stdout)",
            format!(
                "timeout {}, killed then; not retried",
                humantime::format_duration(spec.timeout)
            ),
        ),
    };
    let (source, answer) = match &spec.api {
        ProviderApi::Json => (
            "a generic provider",
            "Its answer must be JSON with values cumulative since {{start}}",
        ),
        ProviderApi::Datadog => (
            "Datadog's metrics query API",
            "Each version's series (by its tag) are added up since {{start}}",
        ),
        ProviderApi::CloudWatch(_) => (
            "CloudWatch GetMetricData, signed with SigV4 (service monitoring)",
            "Each version's datapoints (by its dimension) are added up since {{start}}",
        ),
    };
    let _ = writeln!(
        out,
        "# Source: {source} (metrics.{}). Every {interval}, {what} per check ({how}).\n\
         # {answer}; below, a tick {}\n\
         # after a start at 1970-01-01T00:00:00Z.",
        spec.name(),
        humantime::format_duration(window)
    );
    if !spec.lag.is_zero() {
        let _ = writeln!(
            out,
            "# Each tick reads the data up to {lag} before it (metrics.{}.lag: datapoints arrive late); every step and the final soak last {lag} longer, so that each is decided on the data of its whole duration.",
            spec.name(),
            lag = humantime::format_duration(spec.lag)
        );
    }
    let since = jiff::Timestamp::UNIX_EPOCH;
    let at = since + jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
    for check in &policy.checks {
        let CheckKind::Json(json) = &check.kind else {
            continue;
        };
        let _ = writeln!(out);
        for sentence in criterion_sentences(check) {
            let _ = writeln!(out, "# {}: {sentence}", check.name);
        }
        let _ = writeln!(
            out,
            "# {}: guarantee: {}.",
            check.name,
            json.measure.guarantee()
        );
        let request = canary_metrics::generic::render_request(
            spec,
            &policy.traffic,
            &check.name,
            json,
            since,
            at,
        );
        // Datadog's queries, as written (the URL carries them percent-encoded): what to try
        // in Datadog's own query editor.
        if let (ProviderApi::Datadog, Some(query)) = (&spec.api, &json.query) {
            let _ = writeln!(out, "# {}: Datadog queries: {}", check.name, query.source);
        }
        for line in request.to_string().lines() {
            let _ = writeln!(out, "{line}");
        }
        let read = match (&spec.api, &json.measure) {
            (ProviderApi::Datadog | ProviderApi::CloudWatch(_), JsonMeasure::Counts { .. }) => {
                format!(
                    "the requests and errors of {} (canary) and {} (baseline), added up",
                    version_of(spec, &policy.traffic, &policy.traffic.canary),
                    version_of(spec, &policy.traffic, &policy.traffic.baseline)
                )
            }
            (
                ProviderApi::Datadog | ProviderApi::CloudWatch(_),
                JsonMeasure::Percentile { unit_seconds, .. },
            ) => {
                format!(
                    "the latest percentile of {}, in {}",
                    version_of(spec, &policy.traffic, &policy.traffic.canary),
                    if *unit_seconds == 1.0 { "s" } else { "ms" }
                )
            }
            (_, JsonMeasure::Counts { requests, errors }) => format!(
                "requests {} (canary), {} (baseline); errors {} (canary), {} (baseline)",
                requests.canary, requests.baseline, errors.canary, errors.baseline
            ),
            (
                _,
                JsonMeasure::Percentile {
                    canary,
                    unit_seconds,
                    ..
                },
            ) => format!(
                "the canary's percentile {canary}, in {}",
                if *unit_seconds == 1.0 { "s" } else { "ms" }
            ),
            (_, JsonMeasure::Value { path }) => format!("the value {path}"),
        };
        let _ = writeln!(out, "# {}: reads {read}", check.name);
        if let Some(query) = &json.cloudwatch
            && query.errors_may_be_unlisted
        {
            let _ = writeln!(
                out,
                "# {}: errors-may-be-unlisted: pre-flight asks ListMetrics about the requests metric only; a misspelt errors metric would read as 0 errors",
                check.name
            );
        }
    }
}

/// How a Datadog or CloudWatch answer tells a version's data: its tag or its dimension.
fn version_of(
    spec: &canary_core::policy::JsonSourceSpec,
    traffic: &canary_core::policy::TrafficSelector,
    value: &str,
) -> String {
    match spec.api {
        ProviderApi::CloudWatch(_) => {
            format!("the datapoints of dimension {}={value}", traffic.label)
        }
        _ => format!("the series tagged {}:{value}", traffic.label),
    }
}

/// The steps as lint lists them: weights, and routed steps by what they route
/// (`[header x-canary=1, mirror 20 %, 50, 100]`).
fn steps_in_brief(policy: &Policy) -> String {
    use canary_core::policy::StepRoute;
    policy
        .rollout
        .steps
        .iter()
        .enumerate()
        .map(|(index, weight)| match policy.rollout.route(index) {
            Some(StepRoute::Header { name, value }) => format!("header {name}={value}"),
            Some(StepRoute::Cookie { name }) => format!("cookie {name}"),
            Some(StepRoute::Mirror { percent }) => format!("mirror {percent} %"),
            None => weight.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
