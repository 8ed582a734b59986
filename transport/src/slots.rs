//! Connections as a bounded resource: every listener of the controller
//! holds its connections in [`Slots`], a count per holder (a source
//! address, or a client certificate once one is verified) and a total.
//! A connection that finds its holder's count full is closed at once; one
//! that finds the total full first evicts, from the holder with the most
//! connections, the one that has waited longest doing nothing — one that
//! has not finished opening (its TLS handshake or its first request), or
//! an idle one without a client certificate — and is closed only when
//! there is none. So a flood of raw TCP connects or of idle
//! handshakes from many addresses cannot keep a browser, an operator or an
//! agent out, and one address cannot take more than its share.
//!
//! [`budget`] divides the process's open files between the listeners and
//! keeps some for everything else (the database pool, log files, the
//! accept loops themselves).

use crate::activity::Activity;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// Whose share a connection counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A source address; an IPv6 address counts by its /64 (which one
    /// machine may fill), an IPv4-mapped one as the IPv4 address.
    Address(IpAddr),
    /// A verified client certificate (the SHA-256 of its DER).
    Certificate([u8; 32]),
}

impl Holder {
    pub fn address(ip: IpAddr) -> Self {
        Holder::Address(address_key(ip))
    }
}

/// The address a connection from `ip` counts as: IPv6 by its /64, as the
/// enrollment rate limit keys it.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// How many connections a listener holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLimits {
    /// All connections together.
    pub total: usize,
    /// From one address (not counting those that presented a client
    /// certificate).
    pub per_address: usize,
    /// With one client certificate.
    pub per_certificate: usize,
}

/// Why a connection was not given a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is held by a connection that may not be evicted.
    Total,
    /// Its address (or certificate) holds all it may.
    Holder,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Total => "every connection slot is taken",
            Refused::Holder => "too many connections from this address or certificate",
        })
    }
}

#[derive(Debug)]
enum Stage {
    /// TLS handshake or first request still to come: evicted first.
    Opening,
    /// Open; with `Some`, a connection without a client certificate that
    /// may be evicted while it has no request in flight.
    Open(Option<Arc<Activity>>),
}

#[derive(Debug)]
struct Entry {
    holder: Holder,
    stage: Stage,
    /// When it was accepted.
    since: std::time::Instant,
    evicted: Arc<Notify>,
}

#[derive(Debug)]
struct State {
    limits: SlotLimits,
    counts: HashMap<Holder, usize>,
    /// By age: the key grows with each slot given.
    entries: BTreeMap<u64, Entry>,
    next: u64,
    evictions: u64,
    /// Evicted connections not yet closed (their tasks hold the socket
    /// until they run).
    closing: usize,
}

impl State {
    fn limit(&self, holder: &Holder) -> usize {
        match holder {
            Holder::Address(_) => self.limits.per_address,
            Holder::Certificate(_) => self.limits.per_certificate,
        }
        .max(1)
    }

    fn count(&self, holder: &Holder) -> usize {
        self.counts.get(holder).copied().unwrap_or(0)
    }

    fn add(&mut self, holder: &Holder) {
        *self.counts.entry(holder.clone()).or_insert(0) += 1;
    }

    fn remove(&mut self, holder: &Holder) {
        if let Some(count) = self.counts.get_mut(holder) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(holder);
            }
        }
    }

    /// Makes room for one more: evicts, from the holder with the most
    /// connections, the one that has waited longest doing nothing — still
    /// opening (since it was accepted), or open without a client
    /// certificate and idle (since its last request). A flood holds many
    /// slots per address and waits; a browser or an operator holds one or
    /// two, whose handshake takes milliseconds: theirs are not the ones to
    /// go, however fast the flood connects.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .entries
            .iter()
            .filter_map(|(id, e)| {
                let waited = match &e.stage {
                    Stage::Opening => Some(e.since.elapsed()),
                    Stage::Open(Some(activity)) => activity.idle_for(),
                    Stage::Open(None) => None,
                }?;
                Some((self.count(&e.holder), waited, std::cmp::Reverse(*id)))
            })
            .max()
            .map(|(_, _, std::cmp::Reverse(id))| id);
        let Some(entry) = victim.and_then(|id| self.entries.remove(&id)) else {
            return false;
        };
        self.remove(&entry.holder);
        entry.evicted.notify_one();
        self.evictions += 1;
        self.closing += 1;
        true
    }
}

/// Evicted connections still closing that a listener of `total` slots
/// allows (a tenth, at least 4); beyond, its accept loop waits
/// ([`Slots::wait_for_room`]), so the sockets held never pass the total
/// and this tenth even when the tasks that close them are slow to run.
pub fn closing_at_most(total: usize) -> usize {
    (total / 10).max(4)
}

/// The connection slots of one listener. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Slots {
    state: Arc<Mutex<State>>,
    /// Told when an evicted connection has closed.
    closed: Arc<Notify>,
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                limits: SlotLimits {
                    total: limits.total.max(1),
                    ..limits
                },
                counts: HashMap::new(),
                entries: BTreeMap::new(),
                next: 0,
                evictions: 0,
                closing: 0,
            })),
            closed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection of `holder`, in its opening stage.
    pub fn take(&self, holder: Holder) -> Result<Slot, Refused> {
        let mut state = self.lock();
        if state.count(&holder) >= state.limit(&holder) {
            return Err(Refused::Holder);
        }
        if state.entries.len() >= state.limits.total
            && (state.closing >= closing_at_most(state.limits.total) || !state.evict_one())
        {
            return Err(Refused::Total);
        }
        let id = state.next;
        state.next += 1;
        state.add(&holder);
        let evicted = Arc::new(Notify::new());
        state.entries.insert(
            id,
            Entry {
                holder,
                stage: Stage::Opening,
                since: std::time::Instant::now(),
                evicted: evicted.clone(),
            },
        );
        Ok(Slot {
            slots: self.clone(),
            id,
            evicted,
        })
    }

    /// Waits while too many evicted connections are still closing (see
    /// [`closing_at_most`]): an accept loop calls it before accepting, so
    /// newcomers wait in the kernel's queue rather than being closed.
    pub async fn wait_for_room(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            {
                let state = self.lock();
                if state.closing < closing_at_most(state.limits.total) {
                    return;
                }
            }
            closed.await;
        }
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.lock().entries.len()
    }

    /// Connections evicted so far to make room for others.
    pub fn evictions(&self) -> u64 {
        self.lock().evictions
    }

    pub fn limits(&self) -> SlotLimits {
        self.lock().limits
    }
}

/// One connection's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    id: u64,
    evicted: Arc<Notify>,
}

impl Slot {
    /// The connection has opened (its handshake finished, its first request
    /// came): it is no longer evicted before the others. `idle`: it has no
    /// client certificate and may be evicted while idle.
    pub fn opened(&self, idle: Option<Arc<Activity>>) {
        if let Some(entry) = self.slots.lock().entries.get_mut(&self.id) {
            entry.stage = Stage::Open(idle);
        }
    }

    /// Counts the connection against `holder` from now on (a client
    /// certificate instead of its address); refused, and unchanged, when
    /// `holder` holds all it may.
    pub fn move_to(&self, holder: Holder) -> Result<(), Refused> {
        let mut state = self.slots.lock();
        let Some(old) = state.entries.get(&self.id).map(|e| e.holder.clone()) else {
            // Evicted meanwhile; the connection is about to close.
            return Ok(());
        };
        if old == holder {
            return Ok(());
        }
        if state.count(&holder) >= state.limit(&holder) {
            return Err(Refused::Holder);
        }
        state.remove(&old);
        state.add(&holder);
        if let Some(entry) = state.entries.get_mut(&self.id) {
            entry.holder = holder;
        }
        Ok(())
    }

    /// Resolves when the slot was taken away for another connection: close
    /// the connection.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// The same, as an owned future (for an I/O wrapper to poll).
    pub fn on_eviction(&self) -> tokio::sync::futures::OwnedNotified {
        self.evicted.clone().notified_owned()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        match state.entries.remove(&self.id) {
            Some(entry) => state.remove(&entry.holder),
            // Evicted: it has closed now.
            None => {
                state.closing = state.closing.saturating_sub(1);
                self.slots.closed.notify_waiters();
            }
        }
    }
}

/// Open files kept for everything but connections: a tenth of the limit,
/// at least this many.
pub const MIN_RESERVED_FILES: u64 = 64;
/// The dashboard's connections at most.
pub const MAX_DASHBOARD_CONNECTIONS: usize = 256;
/// The plaintext health listener's and the metrics listener's connections
/// at most, each.
pub const MAX_PROBE_CONNECTIONS: usize = 64;

/// How a process's open files are shared out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Kept for the database, logs, installers being written and accepting.
    pub reserved: usize,
    /// The agent/operator port.
    pub grpc: usize,
    /// The plaintext health listener (0 when off).
    pub health: usize,
    /// The metrics listener (0 when off).
    pub metrics: usize,
    /// The web dashboard (0 when off).
    pub dashboard: usize,
}

/// Which listeners there are besides the agent/operator port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listeners {
    pub health: bool,
    pub metrics: bool,
    pub dashboard: bool,
}

/// Shares `open_files` (the soft limit) out: a tenth (at least
/// [`MIN_RESERVED_FILES`]) reserved; of the rest, a further eleventh kept
/// for evicted connections still closing ([`closing_at_most`]); of what
/// remains the dashboard an eighth (at most 256), health and metrics a
/// sixteenth each (at most 64), the agent/operator port everything else.
pub fn budget(open_files: u64, listeners: Listeners) -> Budget {
    let reserved = (open_files / 10).max(MIN_RESERVED_FILES);
    let rest = usize::try_from(open_files.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(16);
    let rest = rest / 11 * 10;
    let share = |on: bool, divisor: usize, max: usize| {
        if on {
            (rest / divisor).clamp(1, max)
        } else {
            0
        }
    };
    let dashboard = share(listeners.dashboard, 8, MAX_DASHBOARD_CONNECTIONS);
    let health = share(listeners.health, 16, MAX_PROBE_CONNECTIONS);
    let metrics = share(listeners.metrics, 16, MAX_PROBE_CONNECTIONS);
    Budget {
        reserved: usize::try_from(reserved).unwrap_or(usize::MAX),
        grpc: rest.saturating_sub(dashboard + health + metrics).max(1),
        health,
        metrics,
        dashboard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("{text}"))
    }

    fn limits(total: usize, per_address: usize) -> SlotLimits {
        SlotLimits {
            total,
            per_address,
            per_certificate: 2,
        }
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let slots = Slots::new(limits(10, 3));
        let a = Holder::address(ip("10.0.0.1"));
        let held: Vec<_> = (0..3).map(|_| slots.take(a.clone()).unwrap()).collect();
        assert_eq!(slots.take(a.clone()).unwrap_err(), Refused::Holder);
        assert!(slots.take(Holder::address(ip("10.0.0.2"))).is_ok());
        drop(held);
        assert!(slots.take(a).is_ok(), "given back when dropped");
        assert_eq!(slots.held(), 0);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn a_full_listener_evicts_opening_then_idle_unauthenticated_connections() {
        let slots = Slots::new(limits(3, 10));
        let from = |n: u8| Holder::address(IpAddr::from([10, 0, 0, n]));
        let busy = slots.take(from(1)).unwrap();
        busy.opened(None);
        let idle = slots.take(from(2)).unwrap();
        let activity = Arc::new(Activity::default());
        idle.opened(Some(activity.clone()));
        let opening = slots.take(from(3)).unwrap();
        // Full: the one that waited longest goes first (the opening one,
        // younger than the idle one, but the idle one is busy now)…
        let working = activity.begin();
        let newcomer = slots.take(from(4)).unwrap();
        newcomer.opened(None);
        assert_eq!(slots.held(), 3);
        assert_eq!(slots.evictions(), 1);
        // …and is told so.
        let told = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(5), opening.evicted()).await
            });
        assert!(told.is_ok());
        drop(opening);
        assert_eq!(slots.held(), 3, "an evicted slot is not given back twice");
        // Then the idle one without a certificate, unless it is busy.
        assert_eq!(slots.take(from(5)).unwrap_err(), Refused::Total);
        drop(working);
        assert!(slots.take(from(5)).is_ok());
        assert_eq!(slots.evictions(), 2);
        drop((busy, idle, newcomer));
    }

    #[test]
    fn the_address_holding_most_loses_a_slot_first() {
        let slots = Slots::new(limits(4, 10));
        let flood = Holder::address(ip("10.0.0.9"));
        let _flood: Vec<_> = (0..3).map(|_| slots.take(flood.clone()).unwrap()).collect();
        // A browser's connection, younger than the flood's, in its handshake.
        let browser = slots.take(Holder::address(ip("10.0.0.1"))).unwrap();
        let _more = slots.take(flood.clone()).unwrap();
        let _more = slots.take(Holder::address(ip("10.0.0.2"))).unwrap();
        assert_eq!(slots.evictions(), 2);
        browser.opened(None);
        let flood_left = slots.lock().count(&flood);
        assert_eq!(flood_left, 2, "both evictions hit the flood's address");
    }

    #[test]
    fn a_certificate_has_its_own_share() {
        let slots = Slots::new(limits(10, 1));
        let a = Holder::address(ip("10.0.0.1"));
        let first = slots.take(a.clone()).unwrap();
        first.move_to(Holder::Certificate([1; 32])).unwrap();
        // The address is free again for the next handshake.
        let second = slots.take(a.clone()).unwrap();
        second.move_to(Holder::Certificate([1; 32])).unwrap();
        let third = slots.take(a).unwrap();
        assert_eq!(
            third.move_to(Holder::Certificate([1; 32])).unwrap_err(),
            Refused::Holder
        );
        assert!(third.move_to(Holder::Certificate([2; 32])).is_ok());
    }

    #[test]
    fn the_budget_keeps_files_reserved_and_shares_the_rest() {
        let all = Listeners {
            health: true,
            metrics: true,
            dashboard: true,
        };
        let small = budget(1024, all);
        assert_eq!(small.reserved, 102);
        let shares = [small.grpc, small.health, small.metrics, small.dashboard];
        assert_eq!(shares.iter().sum::<usize>(), 830);
        assert!(
            shares
                .iter()
                .map(|s| s + closing_at_most(*s))
                .sum::<usize>()
                <= 1024 - 102,
            "the evicted connections still closing fit too"
        );
        assert_eq!(small.dashboard, 103);
        assert_eq!(small.health, 51);
        assert_eq!(small.grpc, 625);
        let big = budget(65536, all);
        assert_eq!(big.dashboard, 256);
        assert_eq!(big.metrics, 64);
        assert!(big.grpc > 53_000);
        let tiny = budget(100, Listeners::default());
        assert_eq!(tiny.reserved, 64);
        assert_eq!(tiny.grpc, 30);
        assert_eq!(tiny.dashboard, 0);
    }
}
