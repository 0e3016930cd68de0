//! Synthetic demo data: realistic, seeded, deterministic leads and events for `exportd demo`.
//!
//! The point of demo data is to make every export feature show something plausible on a fresh
//! install and in tests: weighted sources and states (so summaries have a shape), failures with
//! reasons, exact money, PII (email, phone, SSN) to mask, optional enhancement keys
//! (`appended.*`) that only half the leads have, and events whose prices add up to the lead's
//! revenue.
//!
//! # Determinism
//! Everything derives from one xoshiro256** stream seeded with `--seed`, the lead count, the
//! number of days and the end of the window. With a fixed `--end` two runs write identical
//! stores; without it the window ends "now" and only the shape repeats.
//!
//! # Speed
//! Leads are generated in `created_at` order and their ids are MongoDB-ObjectId-shaped
//! (24 hex characters, like LeadConduit's, starting with the creation second), so every
//! index of the store is appended to at its right edge instead of being updated at random
//! places; with SQLite's small default page cache, random primary keys make a million-lead
//! load several times slower. [`generate`] builds batches on a second thread while the calling
//! thread, which owns the store, inserts them.

use super::{Error, LeadStore, NewEvent, NewLead};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};
use std::fmt::Write as _;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of leads.
    pub leads: u64,
    /// Seed of the random stream.
    pub seed: u64,
    /// Leads are created over this many days before `end`.
    pub days: u32,
    /// Exclusive end of the creation window.
    pub end: DateTime<Utc>,
    /// Leads per insert transaction.
    pub batch: usize,
}

impl DemoOptions {
    /// `leads` leads over the 30 days before `end`, seed 42, batches of 10,000.
    pub fn new(leads: u64, end: DateTime<Utc>) -> DemoOptions {
        DemoOptions {
            leads,
            seed: 42,
            days: 30,
            end,
            batch: 10_000,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Leads inserted.
    pub leads: u64,
    /// Events inserted.
    pub events: u64,
}

/// Generates demo data into `store`, calling `progress` with the number of leads written after
/// each batch. Records are built on a helper thread while this thread (which owns the store,
/// `Send` but not `Sync`) inserts them, so generation and SQLite overlap on two cores.
pub fn generate(
    store: &mut dyn LeadStore,
    options: &DemoOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, Error> {
    let generator = Generator::new(options)?;
    // Into an empty store, indexes are cheaper to build once at the end than row by row.
    let bulk = store.totals()? == (0, 0);
    if bulk {
        store.begin_bulk_load()?;
    }
    let written = std::thread::scope(|scope| {
        // Two batches in flight: one being inserted, one ready; more only costs memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(1);
        // Spent batches go back so that freeing their many small allocations happens on the
        // generator thread, not on the thread that is busy inserting.
        let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Batch>();
        scope.spawn(move || {
            for batch in generator {
                while let Ok(spent) = spent_rx.try_recv() {
                    drop(spent);
                }
                if tx.send(batch).is_err() {
                    break; // The inserting side failed and stopped listening.
                }
            }
        });
        let mut written = Written::default();
        for batch in rx {
            store.insert_leads(&batch.leads)?;
            store.insert_events(&batch.events)?;
            written.leads += batch.leads.len() as u64;
            written.events += batch.events.len() as u64;
            progress(written.leads);
            let _ = spent_tx.send(batch);
        }
        Ok::<_, Error>(written)
    });
    // Rebuild the indexes whatever happened, so a failed load never leaves the store slow.
    if bulk {
        store.end_bulk_load()?;
    }
    written
}

/// One transaction's worth of records: leads and the events that belong to them.
#[derive(Debug, Default)]
pub struct Batch {
    /// Leads, in creation order.
    pub leads: Vec<NewLead>,
    /// Their events.
    pub events: Vec<NewEvent>,
}

/// A seeded pseudo-random stream: xoshiro256** seeded through splitmix64.
///
/// Hand-written to avoid a dependency and so the stream never changes under us with a crate
/// upgrade: the same seed must give the same demo data in every version that shares this code.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift: unbiased enough for demo data.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniformly chosen element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An element chosen by weight (`(item, weight)` pairs, weights need not sum to 1).
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, f64)]) -> &'a T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.unit() * total;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1].0
    }
}

/// Produces [`Batch`]es in creation order; an iterator so tests can look at records without a
/// store.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    batch: usize,
    end_year: i32,
    /// Exclusive end of the window (caps `updated_at`).
    end: DateTime<Utc>,
    /// Start of each hour slot and how many leads it holds, consumed front to back.
    slots: std::vec::IntoIter<(DateTime<Utc>, u64)>,
    /// Creation times of the current slot not yet used, in order.
    pending: std::vec::IntoIter<DateTime<Utc>>,
    lead_ids: ObjectIds,
    event_ids: ObjectIds,
}

/// Local hour weights (US Eastern): leads arrive in business hours, few at night.
const HOUR_WEIGHTS: [f64; 24] = [
    0.15, 0.12, 0.1, 0.1, 0.12, 0.18, 0.3, 0.5, 0.8, 1.15, 1.25, 1.25, 1.1, 1.2, 1.25, 1.2, 1.1,
    1.0, 0.85, 0.8, 0.7, 0.5, 0.35, 0.22,
];

impl Generator {
    /// Plans the creation times; fails on a window of zero days.
    pub fn new(options: &DemoOptions) -> Result<Generator, Error> {
        if options.days == 0 {
            return Err(Error::InvalidRecord(
                "demo data needs a window of at least one day: use --days 1 or more".into(),
            ));
        }
        let mut rng = Rng::new(options.seed);
        let start = options.end - Duration::days(i64::from(options.days));
        // Each day gets its own volume (+/- 20%), and weekends are quieter, so daily
        // summaries are not flat lines.
        let day_factor: Vec<f64> = (0..options.days).map(|_| 0.8 + 0.4 * rng.unit()).collect();
        let hours = options.days as usize * 24;
        let mut weights = Vec::with_capacity(hours);
        for h in 0..hours {
            let at = start + Duration::hours(h as i64);
            let local = at.with_timezone(&chrono_tz::America::New_York);
            let weekend = matches!(local.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
            let w = HOUR_WEIGHTS[local.hour() as usize]
                * day_factor[h / 24]
                * if weekend { 0.7 } else { 1.0 };
            weights.push((at, w));
        }
        // Apportion exactly `leads` leads by cumulative rounding: the total is exact and each
        // slot's count is within one of its share.
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        let mut slots = Vec::with_capacity(hours);
        let mut cumulative = 0.0;
        let mut assigned = 0u64;
        for (i, (at, w)) in weights.into_iter().enumerate() {
            cumulative += w;
            let upto = if i + 1 == hours {
                options.leads
            } else {
                ((options.leads as f64) * cumulative / total).round() as u64
            }
            .clamp(assigned, options.leads);
            slots.push((at, upto - assigned));
            assigned = upto;
        }
        let lead_machine = rng.next_u64() & 0xFF_FFFF_FFFF;
        let lead_counter = rng.next_u64() as u32 & 0xFF_FFFF;
        let event_machine = rng.next_u64() & 0xFF_FFFF_FFFF;
        let event_counter = rng.next_u64() as u32 & 0xFF_FFFF;
        Ok(Generator {
            rng,
            batch: options.batch.max(1),
            end_year: options.end.year(),
            end: options.end,
            slots: slots.into_iter(),
            pending: Vec::new().into_iter(),
            lead_ids: ObjectIds {
                machine: lead_machine,
                counter: lead_counter,
            },
            event_ids: ObjectIds {
                machine: event_machine,
                counter: event_counter,
            },
        })
    }

    /// The next creation time, in order, or `None` when all leads are planned.
    fn next_time(&mut self) -> Option<DateTime<Utc>> {
        loop {
            if let Some(t) = self.pending.next() {
                return Some(t);
            }
            let (slot, count) = self.slots.next()?;
            let mut offsets: Vec<i64> = (0..count)
                .map(|_| self.rng.below(3_600_000) as i64)
                .collect();
            offsets.sort_unstable();
            self.pending = offsets
                .into_iter()
                .map(|ms| slot + Duration::milliseconds(ms))
                .collect::<Vec<_>>()
                .into_iter();
        }
    }

    /// One lead created at `created` and its events, appended to `batch`.
    fn lead(&mut self, created: DateTime<Utc>, batch: &mut Batch) {
        let end = self.end;
        let rng = &mut self.rng;
        let id = self.lead_ids.next(created);
        let source = *rng.weighted(SOURCES);
        let flow = *rng.weighted(FLOWS);

        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let email_valid = rng.chance(0.95);
        let domain = if email_valid {
            *rng.weighted(EMAIL_DOMAINS)
        } else {
            *rng.pick(BAD_DOMAINS)
        };
        let mut email = String::with_capacity(32);
        let (f, l) = (first.to_ascii_lowercase(), last.to_ascii_lowercase());
        match rng.below(4) {
            0 => write!(email, "{f}.{l}"),
            1 => write!(email, "{f}{l}"),
            2 => write!(email, "{}{l}", &f[..1]),
            _ => write!(email, "{f}_{l}"),
        }
        .ok();
        if rng.chance(0.4) {
            write!(email, "{}", rng.range(1, 99)).ok();
        }
        write!(email, "@{domain}").ok();

        let state = rng.weighted(STATES);
        let city = rng.pick(state.cities);
        let area = *rng.pick(city.areas);
        let phone = format!("{area}-{}-{:04}", rng.range(201, 989), rng.range(0, 9999));
        let postal = format!("{:03}{:02}", city.zip3, rng.range(1, 99));
        let address = format!(
            "{} {} {}",
            rng.range(1, 9999),
            rng.pick(STREETS),
            rng.pick(STREET_SUFFIXES)
        );
        let score = (rng.range(0, 100) + rng.range(0, 100)) / 2;
        let dob = format!(
            "{}-{:02}-{:02}",
            self.end_year - rng.range(18, 80) as i32,
            rng.range(1, 12),
            rng.range(1, 28)
        );
        let ip = format!(
            "{}.{}.{}.{}",
            rng.pick(IP_FIRST_OCTETS),
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(1, 254)
        );
        let mut cert = String::with_capacity(70);
        cert.push_str("https://cert.trustedform.com/");
        push_hex(&mut cert, rng.next_u64(), 16);
        push_hex(&mut cert, rng.next_u64(), 16);
        push_hex(&mut cert, rng.next_u64(), 8);

        let mut doc = Map::new();
        let mut put = |k: &str, v: Json| {
            doc.insert(k.to_owned(), v);
        };
        put("first_name", first.into());
        put("last_name", last.into());
        put("email", email.clone().into());
        put("email.valid", email_valid.into());
        put("email.domain", domain.into());
        put("phone_1", phone.into());
        put("phone_1.area", area.to_string().into());
        put(
            "phone_1.type",
            if rng.chance(0.7) {
                "mobile"
            } else {
                "landline"
            }
            .into(),
        );
        put("address_1", address.into());
        put("city", city.name.into());
        put("state", state.code.into());
        put("postal_code", postal.into());
        put("lead_score", score.into());
        put("dob", dob.into());
        put("ip_address", ip.into());
        put("user_agent", (*rng.pick(USER_AGENTS)).into());
        put("trustedform_cert_url", cert.into());
        if rng.chance(0.1) {
            let ssn = format!(
                "{:03}-{:02}-{:04}",
                rng.range(1, 665),
                rng.range(1, 99),
                rng.range(1, 9999)
            );
            put("ssn", ssn.into());
        }
        if rng.chance(0.5) {
            put("appended.income", (rng.range(25, 250) * 1000).into());
            put("appended.homeowner", rng.chance(0.6).into());
        }

        // Outcome: an invalid email is (almost always) rejected; the rest fail at rates that
        // make the overall mix ~70% success, ~25% failure, ~5% error.
        let (outcome, reason) = if !email_valid && rng.chance(0.9) {
            ("failure", Some("invalid email"))
        } else {
            let x = rng.unit();
            if x < 0.053 {
                ("error", Some("timeout"))
            } else if x < 0.053 + 0.215 {
                ("failure", Some(*rng.weighted(FAILURE_REASONS)))
            } else {
                ("success", None)
            }
        };
        let cost = Decimal::new(rng.range(50, 1200), 2);
        let revenue_cents = if outcome == "success" {
            rng.range(500, 6500)
        } else {
            0
        };
        let updated = if rng.chance(0.2) {
            (created + Duration::seconds(rng.range(60, 3 * 86_400)))
                .min(end - Duration::milliseconds(1))
                .max(created)
        } else {
            created
        };

        // Events: the source step, then the deliveries. Delivered prices add up to revenue.
        let snapshot = {
            let mut m = Map::new();
            m.insert("email".into(), email.into());
            m.insert("state".into(), state.code.into());
            m.insert("lead_score".into(), score.into());
            m
        };
        let mut at = created + Duration::milliseconds(rng.range(2, 40));
        let accepted = outcome != "failure" || reason == Some("no buyer");
        let source_ms = rng.range(3, 60);
        batch.events.push(NewEvent {
            id: self.event_ids.next(at),
            kind: if accepted {
                "source.accepted"
            } else {
                "source.rejected"
            }
            .into(),
            timestamp: at,
            lead_id: Some(id.clone()),
            outcome: Some(if accepted { "success" } else { "failure" }.into()),
            reason: if accepted {
                None
            } else {
                reason.map(str::to_owned)
            },
            recipient: None,
            price: None,
            duration_ms: Some(source_ms),
            metadata: Map::new(),
            lead: snapshot.clone(),
        });
        at += Duration::milliseconds(source_ms);
        if accepted {
            // (buyer, delivered, failure reason, HTTP status)
            let attempts: Vec<(&str, bool, &str, u16)> = match outcome {
                "success" => {
                    let n = rng.range(1, 3) as usize;
                    let mut buyers = BUYERS.to_vec();
                    let mut out = Vec::with_capacity(n);
                    for i in 0..n {
                        let b = buyers.swap_remove(rng.below(buyers.len() as u64) as usize);
                        // The last attempt always sells, so a success has revenue.
                        let delivered = i + 1 == n || rng.chance(0.5);
                        out.push((b, delivered, "no buyer", if delivered { 200 } else { 422 }));
                    }
                    out
                }
                "error" => vec![(*rng.pick(BUYERS), false, "timeout", 504)],
                _ => (0..rng.range(1, 2))
                    .map(|_| (*rng.pick(BUYERS), false, "no buyer", 422))
                    .collect(),
            };
            let delivered = attempts.iter().filter(|a| a.1).count() as i64;
            let mut left = revenue_cents;
            let mut k = 0;
            for (attempt, (buyer, ok, why, status)) in attempts.into_iter().enumerate() {
                let ms = if status == 504 {
                    rng.range(5_000, 15_000)
                } else {
                    rng.range(80, 2_500)
                };
                at += Duration::milliseconds(rng.range(1, 20));
                let price = if ok {
                    k += 1;
                    let cents = if k == delivered {
                        left
                    } else {
                        rng.range(100.min(left), left - (delivered - k) * 100)
                            .max(0)
                    };
                    left -= cents;
                    Some(Decimal::new(cents, 2))
                } else {
                    None
                };
                let mut metadata = Map::new();
                metadata.insert("http_status".into(), status.into());
                metadata.insert("attempt".into(), (attempt as u64 + 1).into());
                batch.events.push(NewEvent {
                    id: self.event_ids.next(at),
                    kind: if ok {
                        "recipient.delivered"
                    } else {
                        "recipient.failed"
                    }
                    .into(),
                    timestamp: at,
                    lead_id: Some(id.clone()),
                    outcome: Some(if ok { "success" } else { "failure" }.into()),
                    reason: if ok { None } else { Some(why.into()) },
                    recipient: Some(buyer.into()),
                    price,
                    duration_ms: Some(ms),
                    metadata,
                    lead: snapshot.clone(),
                });
                at += Duration::milliseconds(ms);
            }
        }

        batch.leads.push(NewLead {
            id,
            created_at: created,
            updated_at: updated,
            source: Some(source.into()),
            flow: Some(flow.into()),
            outcome: Some(outcome.into()),
            reason: reason.map(str::to_owned),
            revenue: Some(Decimal::new(revenue_cents, 2)),
            cost: Some(cost),
            doc,
        });
    }
}

impl Iterator for Generator {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut batch = Batch {
            leads: Vec::with_capacity(self.batch),
            events: Vec::with_capacity(self.batch * 2),
        };
        while batch.leads.len() < self.batch {
            let Some(created) = self.next_time() else {
                break;
            };
            self.lead(created, &mut batch);
        }
        (!batch.leads.is_empty()).then_some(batch)
    }
}

/// MongoDB-ObjectId-shaped ids: 4 bytes of Unix seconds, 5 bytes fixed per generator ("machine"),
/// 3 bytes of a counter. Ids made in time order sort in time order.
#[derive(Debug)]
struct ObjectIds {
    machine: u64,
    counter: u32,
}

impl ObjectIds {
    fn next(&mut self, at: DateTime<Utc>) -> String {
        self.counter = (self.counter + 1) & 0xFF_FFFF;
        let mut s = String::with_capacity(24);
        push_hex(
            &mut s,
            at.timestamp().clamp(0, i64::from(u32::MAX)) as u64,
            8,
        );
        push_hex(&mut s, self.machine, 10);
        push_hex(&mut s, u64::from(self.counter), 6);
        s
    }
}

/// Appends the low `digits` hex digits of `v`, zero-padded.
fn push_hex(s: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        s.push(HEX[((v >> (i * 4)) & 0xF) as usize] as char);
    }
}

/// Traffic sources and their share.
const SOURCES: &[(&str, f64)] = &[
    ("google-ads", 28.0),
    ("facebook", 18.0),
    ("bing", 8.0),
    ("affiliate-acme", 10.0),
    ("affiliate-zeta", 7.0),
    ("organic", 9.0),
    ("referral", 5.0),
    ("tiktok", 6.0),
    ("email-campaign", 5.0),
    ("partner-api", 4.0),
];

const FLOWS: &[(&str, f64)] = &[
    ("auto-insurance", 40.0),
    ("home-insurance", 25.0),
    ("solar", 15.0),
    ("mortgage", 20.0),
];

/// Why a lead failed, besides an invalid email.
const FAILURE_REASONS: &[(&str, f64)] = &[
    ("duplicate", 40.0),
    ("out of area", 25.0),
    ("no buyer", 30.0),
];

const BUYERS: &[&str] = &[
    "buyer-alpha",
    "buyer-bravo",
    "buyer-charlie",
    "buyer-delta",
    "buyer-echo",
];

const EMAIL_DOMAINS: &[(&str, f64)] = &[
    ("gmail.com", 45.0),
    ("yahoo.com", 15.0),
    ("hotmail.com", 9.0),
    ("outlook.com", 8.0),
    ("aol.com", 5.0),
    ("icloud.com", 8.0),
    ("comcast.net", 4.0),
    ("protonmail.com", 2.0),
    ("att.net", 4.0),
];

/// Domains of undeliverable addresses (typos and test domains).
const BAD_DOMAINS: &[&str] = &[
    "gmial.com",
    "yaho.com",
    "hotmial.com",
    "example.com",
    "gmail.con",
];

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Betty",
    "Mark",
    "Maria",
    "Jose",
    "Sandra",
    "Kevin",
    "Ashley",
    "Brian",
    "Emily",
    "Luis",
    "Michelle",
    "Wei",
    "Priya",
    "Andre",
    "Keisha",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Patel",
    "Kim",
    "Chen",
];

const STREETS: &[&str] = &[
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "Lincoln",
    "Jefferson",
    "Highland",
    "Church",
    "Willow",
    "River",
    "Meadow",
    "Spring",
    "Forest",
];

const STREET_SUFFIXES: &[&str] = &["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way"];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918U) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
];

/// First octets of public, residential-looking IPv4 ranges.
const IP_FIRST_OCTETS: &[u8] = &[
    24, 45, 47, 63, 66, 67, 68, 69, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99, 104, 107, 108, 174,
];

/// A city: its name, the first three digits of its ZIP codes and its area codes.
#[derive(Debug)]
struct City {
    name: &'static str,
    zip3: u16,
    areas: &'static [u16],
}

/// A state, its share of leads and some of its cities.
#[derive(Debug)]
struct State {
    code: &'static str,
    cities: &'static [City],
}

const fn city(name: &'static str, zip3: u16, areas: &'static [u16]) -> City {
    City { name, zip3, areas }
}

/// States by share of leads: the big ten first, then the rest.
const STATES: &[(State, f64)] = &[
    (
        State {
            code: "CA",
            cities: &[
                city("Los Angeles", 900, &[213, 310, 323]),
                city("San Diego", 921, &[619, 858]),
                city("San Jose", 951, &[408, 669]),
                city("San Francisco", 941, &[415, 628]),
                city("Sacramento", 958, &[916]),
                city("Fresno", 937, &[559]),
            ],
        },
        14.0,
    ),
    (
        State {
            code: "TX",
            cities: &[
                city("Houston", 770, &[713, 281, 832]),
                city("Dallas", 752, &[214, 469, 972]),
                city("Austin", 787, &[512, 737]),
                city("San Antonio", 782, &[210, 726]),
            ],
        },
        10.0,
    ),
    (
        State {
            code: "FL",
            cities: &[
                city("Miami", 331, &[305, 786]),
                city("Orlando", 328, &[407, 321]),
                city("Tampa", 336, &[813]),
                city("Jacksonville", 322, &[904]),
            ],
        },
        8.0,
    ),
    (
        State {
            code: "NY",
            cities: &[
                city("New York", 100, &[212, 646, 917]),
                city("Brooklyn", 112, &[718, 347]),
                city("Buffalo", 142, &[716]),
                city("Rochester", 146, &[585]),
            ],
        },
        7.0,
    ),
    (
        State {
            code: "PA",
            cities: &[
                city("Philadelphia", 191, &[215, 267]),
                city("Pittsburgh", 152, &[412]),
            ],
        },
        5.0,
    ),
    (
        State {
            code: "IL",
            cities: &[
                city("Chicago", 606, &[312, 773, 872]),
                city("Springfield", 627, &[217]),
            ],
        },
        4.5,
    ),
    (
        State {
            code: "OH",
            cities: &[
                city("Columbus", 432, &[614]),
                city("Cleveland", 441, &[216]),
                city("Cincinnati", 452, &[513]),
            ],
        },
        4.0,
    ),
    (
        State {
            code: "GA",
            cities: &[
                city("Atlanta", 303, &[404, 678, 770]),
                city("Savannah", 314, &[912]),
            ],
        },
        4.0,
    ),
    (
        State {
            code: "NC",
            cities: &[
                city("Charlotte", 282, &[704, 980]),
                city("Raleigh", 276, &[919, 984]),
            ],
        },
        3.5,
    ),
    (
        State {
            code: "MI",
            cities: &[
                city("Detroit", 482, &[313]),
                city("Grand Rapids", 495, &[616]),
            ],
        },
        3.5,
    ),
    (
        State {
            code: "NJ",
            cities: &[
                city("Newark", 71, &[973, 862]),
                city("Jersey City", 73, &[201, 551]),
            ],
        },
        3.0,
    ),
    (
        State {
            code: "VA",
            cities: &[
                city("Virginia Beach", 234, &[757]),
                city("Richmond", 232, &[804]),
            ],
        },
        2.8,
    ),
    (
        State {
            code: "WA",
            cities: &[city("Seattle", 981, &[206]), city("Spokane", 992, &[509])],
        },
        2.6,
    ),
    (
        State {
            code: "AZ",
            cities: &[
                city("Phoenix", 850, &[602, 480]),
                city("Tucson", 857, &[520]),
            ],
        },
        2.6,
    ),
    (
        State {
            code: "MA",
            cities: &[
                city("Boston", 21, &[617, 857]),
                city("Worcester", 16, &[508]),
            ],
        },
        2.2,
    ),
    (
        State {
            code: "TN",
            cities: &[city("Nashville", 372, &[615]), city("Memphis", 381, &[901])],
        },
        2.2,
    ),
    (
        State {
            code: "CO",
            cities: &[city("Denver", 802, &[303, 720])],
        },
        2.0,
    ),
    (
        State {
            code: "IN",
            cities: &[city("Indianapolis", 462, &[317])],
        },
        2.0,
    ),
    (
        State {
            code: "MO",
            cities: &[
                city("Kansas City", 641, &[816]),
                city("St. Louis", 631, &[314]),
            ],
        },
        1.9,
    ),
    (
        State {
            code: "MN",
            cities: &[city("Minneapolis", 554, &[612])],
        },
        1.7,
    ),
    (
        State {
            code: "SC",
            cities: &[city("Columbia", 292, &[803])],
        },
        1.6,
    ),
    (
        State {
            code: "AL",
            cities: &[city("Birmingham", 352, &[205])],
        },
        1.5,
    ),
    (
        State {
            code: "LA",
            cities: &[city("New Orleans", 701, &[504])],
        },
        1.4,
    ),
    (
        State {
            code: "NV",
            cities: &[city("Las Vegas", 891, &[702, 725])],
        },
        1.3,
    ),
    (
        State {
            code: "OR",
            cities: &[city("Portland", 972, &[503, 971])],
        },
        1.3,
    ),
    (
        State {
            code: "OK",
            cities: &[city("Oklahoma City", 731, &[405])],
        },
        1.2,
    ),
    (
        State {
            code: "KY",
            cities: &[city("Louisville", 402, &[502])],
        },
        1.2,
    ),
    (
        State {
            code: "UT",
            cities: &[city("Salt Lake City", 841, &[801])],
        },
        1.0,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Table, TimeField};
    use std::collections::HashMap;

    fn end() -> DateTime<Utc> {
        "2024-06-01T00:00:00Z".parse().unwrap()
    }

    fn options(leads: u64) -> DemoOptions {
        DemoOptions {
            batch: 500,
            ..DemoOptions::new(leads, end())
        }
    }

    fn all(options: &DemoOptions) -> Batch {
        let mut out = Batch::default();
        for mut b in Generator::new(options).unwrap() {
            out.leads.append(&mut b.leads);
            out.events.append(&mut b.events);
        }
        out
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        for _ in 0..1000 {
            let r = a.range(-3, 3);
            assert!((-3..=3).contains(&r));
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn generates_exactly_n_leads_in_order_inside_the_window() {
        let data = all(&DemoOptions {
            days: 3,
            ..options(1_234)
        });
        assert_eq!(data.leads.len(), 1_234);
        let start = end() - Duration::days(3);
        for pair in data.leads.windows(2) {
            assert!(pair[0].created_at <= pair[1].created_at);
            assert!(pair[0].id < pair[1].id, "ids sort in creation order");
        }
        for lead in &data.leads {
            assert!(lead.created_at >= start && lead.created_at < end());
            assert!(lead.updated_at >= lead.created_at && lead.updated_at < end());
            assert_eq!(lead.id.len(), 24);
            assert!(lead.id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn zero_days_is_an_error() {
        let err = Generator::new(&DemoOptions {
            days: 0,
            ..options(10)
        })
        .unwrap_err();
        assert!(err.to_string().contains("--days"));
    }

    #[test]
    fn outcomes_money_and_events_are_consistent() {
        let data = all(&options(3_000));
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        let mut events_by_lead: HashMap<&str, Vec<&NewEvent>> = HashMap::new();
        for e in &data.events {
            events_by_lead
                .entry(e.lead_id.as_deref().unwrap())
                .or_default()
                .push(e);
        }
        for lead in &data.leads {
            let outcome = lead.outcome.clone().unwrap();
            *outcomes.entry(outcome.clone()).or_default() += 1;
            let revenue = lead.revenue.unwrap();
            let cost = lead.cost.unwrap();
            assert_eq!(revenue.scale(), 2);
            assert!(cost >= Decimal::new(50, 2) && cost <= Decimal::new(1200, 2));
            let events = &events_by_lead[lead.id.as_str()];
            assert!(events[0].kind.starts_with("source."));
            assert!(events[0].timestamp > lead.created_at);
            let sold: Decimal = events.iter().filter_map(|e| e.price).sum();
            assert_eq!(
                sold, revenue,
                "delivered prices add up to revenue for {}",
                lead.id
            );
            if outcome == "success" {
                assert!(lead.reason.is_none());
                assert!(revenue >= Decimal::new(500, 2) && revenue <= Decimal::new(6500, 2));
                assert!((2..=4).contains(&events.len()));
            } else {
                assert!(lead.reason.is_some());
                assert!(revenue.is_zero());
            }
        }
        let share = |o: &str| outcomes.get(o).copied().unwrap_or(0) as f64 / 3_000.0;
        assert!((0.64..0.76).contains(&share("success")), "{outcomes:?}");
        assert!((0.20..0.30).contains(&share("failure")), "{outcomes:?}");
        assert!((0.02..0.08).contains(&share("error")), "{outcomes:?}");
    }

    #[test]
    fn demo_store_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("leads.db")).unwrap();
        let opts = options(2_000);
        let mut calls = 0;
        let written = generate(&mut store, &opts, &mut |_| calls += 1).unwrap();
        assert_eq!(calls, 4, "one progress call per batch of 500");
        assert_eq!(written.leads, 2_000);
        assert_eq!(store.totals().unwrap(), (written.leads, written.events));
        assert!(written.events > 3_000);

        // Same seed, same data; another seed, other data.
        let first = |o: &DemoOptions| Generator::new(o).unwrap().next().unwrap().leads.remove(0);
        let (a, b) = (first(&opts), first(&opts));
        assert_eq!((&a.id, a.created_at, &a.doc), (&b.id, b.created_at, &b.doc));
        let c = first(&DemoOptions {
            seed: 43,
            ..opts.clone()
        });
        assert_ne!(a.doc, c.doc);

        // The state mix follows the weights roughly (CA 14%, TX 10%, small states ~1%).
        let mut states: HashMap<String, usize> = HashMap::new();
        let query = crate::store::Query {
            table: Table::Leads,
            time_field: Default::default(),
            start: None,
            end: end(),
            filter: None,
            fields: vec!["state".into(), "email.valid".into()],
        };
        store
            .stream(&query, &mut |row| {
                *states.entry(row[0].to_string()).or_default() += 1;
                Ok(true)
            })
            .unwrap();
        let share = |s: &str| states.get(s).copied().unwrap_or(0) as f64 / 2_000.0;
        assert!((0.09..0.19).contains(&share("CA")), "{states:?}");
        assert!((0.06..0.14).contains(&share("TX")), "{states:?}");
        assert!(
            share("CA") > share("OH") && share("TX") > share("UT"),
            "{states:?}"
        );

        let fields = store
            .available_fields(Table::Leads, TimeField::Created, None, end())
            .unwrap();
        for f in [
            "email.valid",
            "appended.income",
            "phone_1.area",
            "ssn",
            "state",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
        let event_fields = store
            .available_fields(Table::Events, TimeField::Created, None, end())
            .unwrap();
        for f in ["metadata.http_status", "lead.email", "lead.lead_score"] {
            assert!(
                event_fields.iter().any(|x| x == f),
                "{f} missing from {event_fields:?}"
            );
        }
    }
}
