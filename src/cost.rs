//! Cost estimates from the ledger: bytes stored now and bytes transferred this month, per
//! export and destination, priced at `[defaults] storage_price_per_gb_month` and
//! `transfer_price_per_gb` (defaults $0.023 and $0.09, S3 Standard's list prices).
//!
//! Only remote destinations are priced (s3, gcs, azure, sftp): a local disk is not billed per
//! byte, and email and webhook deliveries store nothing (their transfer is still counted in
//! bytes). A GB is 2^30 bytes, as the clouds bill. "This month" is the calendar month in UTC.
//! Transfer counts objects still in the ledger, so an object delivered and already deleted by
//! retention within the month is not counted: an estimate, not an invoice.

use crate::state::{LedgerTotal, StateStore};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

/// Prices of storage and transfer, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// Per GB stored for a month.
    pub storage_per_gb_month: f64,
    /// Per GB transferred.
    pub transfer_per_gb: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            storage_per_gb_month: 0.023,
            transfer_per_gb: 0.09,
        }
    }
}

/// Bytes and estimated cost of one export at one destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// Export name.
    pub export: String,
    /// Destination (`s3#0`).
    pub destination: String,
    /// Objects in the ledger.
    pub objects: u64,
    /// Bytes stored now (by the ledger).
    pub stored_bytes: u64,
    /// Bytes delivered since the start of this month.
    pub transferred_bytes_this_month: u64,
    /// Estimated storage cost per month at today's size, USD.
    pub storage_usd_per_month: f64,
    /// Estimated transfer cost so far this month, USD.
    pub transfer_usd_this_month: f64,
}

const GB: f64 = (1u64 << 30) as f64;

/// The first instant of `now`'s month, UTC.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// Whether a destination (`s3#0`) is billed per byte.
fn priced(destination: &str) -> bool {
    let kind = destination.split('#').next().unwrap_or_default();
    matches!(kind, "s3" | "gcs" | "azure" | "sftp")
}

/// Prices one ledger total.
pub fn price(total: &LedgerTotal, prices: Prices) -> Cost {
    let (storage, transfer) = if priced(&total.destination) {
        (
            total.bytes as f64 / GB * prices.storage_per_gb_month,
            total.bytes_since as f64 / GB * prices.transfer_per_gb,
        )
    } else {
        (0.0, 0.0)
    };
    Cost {
        export: total.export.clone(),
        destination: total.destination.clone(),
        objects: total.objects,
        stored_bytes: total.bytes,
        transferred_bytes_this_month: total.bytes_since,
        storage_usd_per_month: round_cents(storage),
        transfer_usd_this_month: round_cents(transfer),
    }
}

/// Costs of one export (or all) at `now`.
pub fn costs(
    state: &dyn StateStore,
    export: Option<&str>,
    prices: Prices,
    now: DateTime<Utc>,
) -> Result<Vec<Cost>, crate::state::Error> {
    Ok(state
        .ledger_totals(export, month_start(now))?
        .iter()
        .map(|t| price(t, prices))
        .collect())
}

/// Rounds to a hundredth of a cent: small exports still show a non-zero estimate.
fn round_cents(usd: f64) -> f64 {
    (usd * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(destination: &str, bytes: u64, since: u64) -> LedgerTotal {
        LedgerTotal {
            export: "daily".into(),
            destination: destination.into(),
            objects: 3,
            bytes,
            bytes_since: since,
        }
    }

    #[test]
    fn remote_destinations_are_priced_per_gb_and_local_ones_are_free() {
        let prices = Prices::default();
        let cost = price(&total("s3#0", 10 << 30, 2 << 30), prices);
        assert_eq!(cost.storage_usd_per_month, 0.23);
        assert_eq!(cost.transfer_usd_this_month, 0.18);
        let local = price(&total("local#1", 10 << 30, 2 << 30), prices);
        assert_eq!(
            (local.storage_usd_per_month, local.transfer_usd_this_month),
            (0.0, 0.0)
        );
        assert_eq!(local.stored_bytes, 10 << 30);
    }

    #[test]
    fn the_month_starts_at_midnight_utc_on_the_first() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 19, 0, 0).unwrap();
        assert_eq!(
            month_start(now),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
    }
}
