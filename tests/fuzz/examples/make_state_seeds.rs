//! Writes the seeds of the `rollout_state` fuzz target: the state files a real rollout of
//! `tests/fuzz/policies/prometheus.yaml` persists, in every phase it passes through — a
//! healthy rollout to `promoted`, a failing canary to `rolled-back`, an inconclusive one,
//! a router failure (`failed`), an interrupted one. Run from the workspace root:
//!
//! ```text
//! cargo run -p canary-fuzz --example make_state_seeds
//! ```

use std::path::Path;

use canary_core::rollout::{Effect, Event, Rollout};
use canary_fuzz::{epoch, machine, prometheus_policy, synthetic_tick};

/// How the scripted driver answers.
#[derive(Clone, Copy)]
enum Script {
    Healthy,
    Failing,
    NoData,
    RouterFails,
    Interrupted,
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/rollout_state");
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    for (name, script) in [
        ("healthy", Script::Healthy),
        ("failing", Script::Failing),
        ("nodata", Script::NoData),
        ("router-fails", Script::RouterFails),
        ("interrupted", Script::Interrupted),
    ] {
        let states = run(script);
        // Every distinct phase once, so the seeds stay few and small.
        let mut seen = Vec::new();
        for state in states {
            let key = format!(
                "{}-{}",
                state.phase().name(),
                serde_json::to_value(state.phase()).expect("a phase")["index"]
            );
            if seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            let path = dir.join(format!("{name}-{}-{key}.json", seen.len()));
            let json = serde_json::to_string_pretty(&state).expect("a state");
            std::fs::write(&path, json).expect("a seed");
            println!("{}", path.display());
        }
    }
}

fn run(script: Script) -> Vec<Rollout> {
    let machine = machine();
    let policy = prometheus_policy();
    let mut now = epoch();
    let mut rollout = machine.start(now, None);
    let mut event = Event::Resume;
    let mut saved = Vec::new();
    let mut tick = 0;
    for _ in 0..400 {
        let effects = machine.handle(&mut rollout, event, now);
        if effects.iter().any(|e| matches!(e, Effect::Persist)) {
            saved.push(rollout.clone());
        }
        event = match effects.last() {
            Some(Effect::RunHooks { event, .. }) => Event::HooksRan {
                event: *event,
                failed: Vec::new(),
            },
            Some(Effect::SetWeight(weight)) => match script {
                Script::RouterFails if *weight == 25 => {
                    Event::RouterFailed("connection refused".to_owned())
                }
                _ => Event::WeightSet(*weight),
            },
            Some(Effect::Wait(until)) => {
                now = now.max(*until);
                match script {
                    Script::Interrupted if tick == 5 => Event::Interrupted,
                    _ => Event::TimerFired,
                }
            }
            Some(Effect::Read { since }) => {
                tick += 1;
                let failing = matches!(script, Script::Failing) && tick > 3;
                let missing = matches!(script, Script::NoData).then_some(0);
                Event::Observed {
                    tick: synthetic_tick(policy, *since, now, tick, failing, missing),
                    checkpoint: None,
                }
            }
            Some(Effect::Promote { stage, .. }) => Event::PromotionDone(*stage),
            Some(Effect::Preflight) => Event::PreflightPassed {
                canary_generation: None,
            },
            Some(Effect::ReadWeight) => Event::WeightRead(rollout.current_weight()),
            _ => break,
        };
    }
    saved
}
