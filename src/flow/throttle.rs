//! Failed-login throttling, per account and per client address.
//!
//! An account (login name, whether or not it exists, so that a lockout reveals nothing)
//! is locked after `max_failures_per_account` failures within `failure_window`, for
//! `lockout_base`, doubling with each further failure up to `lockout_max`. A client
//! address is locked for a whole window after `max_failures_per_address` failures. The
//! counters live in the database, so every instance enforces the same limits.

use std::net::IpAddr;

use crate::clock::UnixTime;
use crate::config::LoginConfig;
use crate::storage::{Store, StoreResult, Throttle};

pub fn account_key(login_name: &str) -> String {
    format!("login:account:{login_name}")
}

pub fn address_key(ip: IpAddr) -> String {
    format!("login:address:{ip}")
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Seconds to lock an account after its `failures`-th failure in the window, if any.
pub fn account_lock(config: &LoginConfig, failures: i64) -> Option<i64> {
    let over = failures - config.max_failures_per_account;
    if over < 0 {
        return None;
    }
    let base = secs(config.lockout_base);
    let factor = 1_i64
        .checked_shl(u32::try_from(over).unwrap_or(u32::MAX).min(30))
        .unwrap_or(i64::MAX);
    Some(base.saturating_mul(factor).min(secs(config.lockout_max)))
}

/// Seconds to lock an address after its `failures`-th failure in the window, if any.
pub fn address_lock(config: &LoginConfig, failures: i64) -> Option<i64> {
    (failures >= config.max_failures_per_address).then(|| secs(config.failure_window))
}

/// The failure counters of an attempt's keys (an account and maybe a client address), as
/// read before the attempt, in one statement.
#[derive(Debug, Default)]
pub struct Counters(Vec<Throttle>);

impl Counters {
    pub async fn read(store: &Store, account: &str, address: Option<&str>) -> StoreResult<Self> {
        Ok(Self(store.get_throttles(account, address).await?))
    }

    /// When the attempt may be made again, if a key is locked now.
    pub fn locked_until(&self, now: UnixTime) -> Option<UnixTime> {
        self.0
            .iter()
            .map(|t| t.locked_until)
            .filter(|until| *until > now)
            .max()
    }

    /// Whether `key` had failures on record: only then does a success have one to clear.
    pub fn counted(&self, key: &str) -> bool {
        self.0.iter().any(|t| t.key == key)
    }
}

impl From<Vec<Throttle>> for Counters {
    fn from(counters: Vec<Throttle>) -> Self {
        Self(counters)
    }
}

/// When the login may be tried again, if the account or the address is locked now.
pub async fn locked_until(
    store: &Store,
    account: &str,
    address: Option<&str>,
    now: UnixTime,
) -> StoreResult<Option<UnixTime>> {
    Ok(Counters::read(store, account, address).await?.locked_until(now))
}

/// Clears `key`'s failures after a success, when `before` (read before the attempt) had any.
/// A count started by a failure in between is left to run out with its window.
pub async fn clear(store: &Store, before: &Counters, key: &str) -> StoreResult<()> {
    if before.counted(key) {
        store.clear_throttle(key).await?;
    }
    Ok(())
}

/// Counts a failed password for the account and the address.
pub async fn record_failure(
    store: &Store,
    config: &LoginConfig,
    account: &str,
    address: Option<&str>,
    now: UnixTime,
) -> StoreResult<()> {
    let window = secs(config.failure_window);
    store
        .record_failure(account, now, window, |n| account_lock(config, n))
        .await?;
    if let Some(address) = address {
        store
            .record_failure(address, now, window, |n| address_lock(config, n))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_lock_starts_at_the_limit_and_doubles_up_to_the_cap() {
        let config = LoginConfig::default();
        assert_eq!(account_lock(&config, 4), None);
        assert_eq!(account_lock(&config, 5), Some(30));
        assert_eq!(account_lock(&config, 6), Some(60));
        assert_eq!(account_lock(&config, 7), Some(120));
        assert_eq!(account_lock(&config, 12), Some(900));
        assert_eq!(account_lock(&config, 1_000_000), Some(900));
    }

    #[test]
    fn counters_report_the_latest_lock_still_running() {
        let row = |key: &str, locked_until| Throttle {
            key: key.into(),
            failures: 5,
            window_start: 0,
            locked_until,
        };
        let counters = Counters(vec![row("account", 130), row("address", 160)]);
        assert_eq!(counters.locked_until(100), Some(160));
        assert_eq!(counters.locked_until(160), None);
        assert!(counters.counted("address") && !counters.counted("other"));
        assert_eq!(Counters::default().locked_until(0), None);
    }

    #[test]
    fn address_lock_is_a_whole_window() {
        let config = LoginConfig::default();
        assert_eq!(address_lock(&config, 99), None);
        assert_eq!(address_lock(&config, 100), Some(900));
    }
}
