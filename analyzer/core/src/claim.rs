//! Claims on a rollout: one driver at a time, and when a silent driver stops counting as
//! alive.
//!
//! A state store ([`crate::ports::StateStore`]) grants the claim to one driving process. The
//! holder proves it is alive with a heartbeat: it renews its claim every
//! [`heartbeat_period`] (a sixth of its time to live), and a claim whose last renewal is
//! older than its time to live (`ttl`, [`DEFAULT_CLAIM_TTL`] = 30 s unless the holder said
//! otherwise in its claim) is *stale*: another driver may take it over without
//! `--take-over`. So "alive" means "renewed its claim within its time to live" — a process
//! that is paused (SIGSTOP, a frozen VM, a debugger) or stuck without reaching the
//! scheduler is not alive in this sense, whatever the kernel says.
//!
//! That is safe only because the holder never acts on a claim it may have lost: before
//! every gateway write, hook, promotion and state save it re-checks its claim
//! ([`crate::ports::StateStore::check_claim`]), and a claim taken over by someone else is
//! [`crate::Error::ClaimLost`]: the process stops without touching anything more (exit 4).
//! A paused holder that resumes therefore finds out at its next write, never after it.
//!
//! Clock skew: the holder stamps its renewals with its own clock and a challenger compares
//! them with its own. A renewal dated in the challenger's future counts as fresh. With a
//! heartbeat every `ttl/6`, a live holder's claim looks at most `ttl/6` plus the skew old,
//! so clocks may disagree by up to `5·ttl/6` (25 s at the default) before a live holder
//! could look stale; keep runners' clocks in sync (NTP) well within that. A holder that is
//! known to be gone on the same host (its process no longer exists) is stale at once.
//!
//! The time to live is the holder's, written into its claim, so a challenger configured
//! with another one still waits as long as the holder promised to renew within.

use std::time::Duration;

use jiff::Timestamp;

/// How long a claim lives without a renewal unless its holder says otherwise.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(30);

/// The shortest time to live a holder may ask for: a heartbeat every half second at most.
pub const MIN_CLAIM_TTL: Duration = Duration::from_secs(3);

/// How many heartbeats fit into a time to live: five may be missed (a slow store, a busy
/// machine) before the claim goes stale.
pub const HEARTBEATS_PER_TTL: u32 = 6;

/// How often a holder with time to live `ttl` renews its claim.
pub fn heartbeat_period(ttl: Duration) -> Duration {
    ttl / HEARTBEATS_PER_TTL
}

/// Whether a claim last renewed at `renewed_at` with time to live `ttl` is stale at `now`
/// (as the challenger's clock says). A renewal in the future is fresh.
pub fn is_stale(renewed_at: Timestamp, ttl: Duration, now: Timestamp) -> bool {
    let age = now.duration_since(renewed_at);
    age.is_positive() && age.unsigned_abs() > ttl
}

/// How old a renewal is at `now`, in whole seconds (0 for one in the future), for messages.
pub fn age_seconds(renewed_at: Timestamp, now: Timestamp) -> u64 {
    let age = now.duration_since(renewed_at);
    if age.is_positive() {
        age.unsigned_abs().as_secs()
    } else {
        0
    }
}

/// A time to live as a holder asks for it (`CANARY_CLAIM_TTL`, e.g. `30s`): at least
/// [`MIN_CLAIM_TTL`].
pub fn parse_claim_ttl(text: &str) -> crate::Result<Duration> {
    let ttl = humantime::parse_duration(text.trim()).map_err(|err| {
        crate::Error::Usage(format!(
            "CANARY_CLAIM_TTL: {text:?} is not a duration such as 30s or 2m ({err})"
        ))
    })?;
    if ttl < MIN_CLAIM_TTL {
        return Err(crate::Error::Usage(format!(
            "CANARY_CLAIM_TTL: {text} is shorter than {} s, the shortest a claim may live",
            MIN_CLAIM_TTL.as_secs()
        )));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_claim_is_stale_only_after_its_time_to_live() {
        let ttl = Duration::from_secs(30);
        assert!(!is_stale(at(0), ttl, at(30)));
        assert!(is_stale(at(0), ttl, at(31)));
        // Renewed "in the future" (the holder's clock is ahead): fresh, never stale.
        assert!(!is_stale(at(100), ttl, at(0)));
        assert_eq!(age_seconds(at(100), at(0)), 0);
        assert_eq!(age_seconds(at(0), at(42)), 42);
    }

    #[test]
    fn heartbeats_come_six_times_per_time_to_live() {
        assert_eq!(heartbeat_period(DEFAULT_CLAIM_TTL), Duration::from_secs(5));
    }

    #[test]
    fn a_time_to_live_is_read_in_seconds_minutes_or_hours_and_not_too_short() {
        assert_eq!(parse_claim_ttl("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_claim_ttl("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_claim_ttl("1s").is_err());
        assert!(parse_claim_ttl("soon").is_err());
        assert!(parse_claim_ttl("30").is_err());
    }
}
