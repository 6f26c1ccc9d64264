//! Rate limits on log lines, so that no client (and no flood of clients) can fill the
//! disk or drown the lines that matter: token buckets per connection (the `conn` field),
//! per call site (one `tracing::info!` in the source), and overall; lines over a limit
//! are counted and summed up every [`SUMMARY_EVERY`] as "N similar lines suppressed".

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tracing::Level;
use tracing::callsite::Identifier;

/// A token bucket's size and refill.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Lines allowed at once.
    pub burst: u32,
    /// Lines allowed per second, sustained.
    pub per_sec: u32,
}

/// Lines of one connection.
pub const PER_CONNECTION: Rate = Rate {
    burst: 50,
    per_sec: 10,
};
/// Lines of one call site (one log statement), from all connections or none.
pub const PER_SITE: Rate = Rate {
    burst: 200,
    per_sec: 50,
};
/// All lines that carry a connection number together.
pub const ALL_CONNECTIONS: Rate = Rate {
    burst: 500,
    per_sec: 100,
};
/// All lines without a connection number (the server's own) together.
pub const ALL_SERVER: Rate = Rate {
    burst: 500,
    per_sec: 100,
};
/// How often suppressed lines are summed up.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// Most connections with a bucket of their own; beyond, new ones share one.
const MAX_CONNECTIONS_TRACKED: usize = 65_536;
/// Most call sites tracked (there are far fewer in the program).
const MAX_SITES_TRACKED: usize = 4096;
/// Most distinct connections counted in one summary (beyond, it says "at least").
pub const MAX_CONNECTIONS_COUNTED: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(rate.per_sec)).min(f64::from(rate.burst));
        self.at = now;
    }

    fn has_one(&self) -> bool {
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    fn is_full(&self, rate: Rate) -> bool {
        self.tokens >= f64::from(rate.burst)
    }
}

/// What was suppressed of one call site since the last summary.
#[derive(Debug)]
struct Suppressed {
    level: Level,
    message: String,
    count: u64,
    connections: HashSet<u64>,
}

/// One summary line's content.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// The level of the suppressed lines (which decides where the summary goes).
    pub level: Level,
    /// The suppressed lines' message.
    pub message: String,
    /// How many were suppressed.
    pub count: u64,
    /// How many distinct connections they came from (0: none carried one).
    pub connections: usize,
    /// The connection, when they all came from one.
    pub conn: Option<u64>,
}

/// The verdict on one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Pass,
    /// Count it; `describe` asks for the line's message (the first suppressed line of
    /// its call site since the last summary), to pass to [`Limiter::describe`].
    Suppress {
        /// Whether the limiter needs the message.
        describe: bool,
    },
}

/// The state of every bucket.
#[derive(Debug)]
pub struct Limiter {
    connections: HashMap<u64, Bucket>,
    sites: HashMap<Identifier, Bucket>,
    all_connections: Bucket,
    all_server: Bucket,
    suppressed: HashMap<Identifier, Suppressed>,
    last_summary: Instant,
}

impl Limiter {
    /// Every bucket full.
    pub fn new(now: Instant) -> Limiter {
        Limiter {
            connections: HashMap::new(),
            sites: HashMap::new(),
            all_connections: Bucket::full(ALL_CONNECTIONS, now),
            all_server: Bucket::full(ALL_SERVER, now),
            suppressed: HashMap::new(),
            last_summary: now,
        }
    }

    /// Decides on one line of call site `site` at `level`, from connection `conn`.
    pub fn admit(
        &mut self,
        site: &Identifier,
        level: Level,
        conn: Option<u64>,
        now: Instant,
    ) -> Verdict {
        let site_ok = if let Some(b) = self.sites.get_mut(site) {
            b.refill(PER_SITE, now);
            b.has_one()
        } else {
            if self.sites.len() < MAX_SITES_TRACKED {
                self.sites.insert(site.clone(), Bucket::full(PER_SITE, now));
            }
            true
        };
        let conn_key = conn.map(|c| {
            if self.connections.contains_key(&c) || self.connections.len() < MAX_CONNECTIONS_TRACKED
            {
                c
            } else {
                u64::MAX
            }
        });
        let conn_ok = match conn_key {
            None => true,
            Some(c) => {
                let b = self
                    .connections
                    .entry(c)
                    .or_insert_with(|| Bucket::full(PER_CONNECTION, now));
                b.refill(PER_CONNECTION, now);
                b.has_one()
            }
        };
        let (all, rate) = match conn {
            Some(_) => (&mut self.all_connections, ALL_CONNECTIONS),
            None => (&mut self.all_server, ALL_SERVER),
        };
        all.refill(rate, now);
        if site_ok && conn_ok && all.has_one() {
            all.take();
            if let Some(b) = self.sites.get_mut(site) {
                b.take();
            }
            if let Some(b) = conn_key.and_then(|c| self.connections.get_mut(&c)) {
                b.take();
            }
            return Verdict::Pass;
        }
        let describe = !self.suppressed.contains_key(site);
        if describe && self.suppressed.len() >= MAX_SITES_TRACKED {
            return Verdict::Suppress { describe: false };
        }
        let s = self
            .suppressed
            .entry(site.clone())
            .or_insert_with(|| Suppressed {
                level,
                message: String::new(),
                count: 0,
                connections: HashSet::new(),
            });
        s.count += 1;
        if let Some(c) = conn
            && s.connections.len() < MAX_CONNECTIONS_COUNTED
        {
            s.connections.insert(c);
        }
        Verdict::Suppress { describe }
    }

    /// Records the message of a call site's suppressed lines.
    pub fn describe(&mut self, site: &Identifier, message: String) {
        if let Some(s) = self.suppressed.get_mut(site) {
            s.message = message;
        }
    }

    /// The summaries due at `now` (every [`SUMMARY_EVERY`], or all with `force`), and
    /// forgets the buckets that are full again (connections long gone).
    pub fn tick(&mut self, now: Instant, force: bool) -> Vec<Summary> {
        self.connections.retain(|_, b| {
            b.refill(PER_CONNECTION, now);
            !b.is_full(PER_CONNECTION)
        });
        if !force && now.saturating_duration_since(self.last_summary) < SUMMARY_EVERY {
            return Vec::new();
        }
        self.last_summary = now;
        let mut out: Vec<Summary> = self
            .suppressed
            .drain()
            .map(|(_, s)| Summary {
                level: s.level,
                message: s.message,
                count: s.count,
                connections: s.connections.len(),
                conn: if s.connections.len() == 1 {
                    s.connections.iter().next().copied()
                } else {
                    None
                },
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        out
    }

    /// How many connections have a bucket (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.connections.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Callsite;
    use tracing::{Metadata, subscriber::Interest};

    struct Site(&'static str);
    impl Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("{}", self.0)
        }
    }
    static A: Site = Site("a");
    static B: Site = Site("b");
    static C: Site = Site("c");

    fn id(s: &'static Site) -> Identifier {
        Identifier(s)
    }

    fn passes(l: &mut Limiter, site: &'static Site, conn: Option<u64>, now: Instant) -> bool {
        l.admit(&id(site), Level::INFO, conn, now) == Verdict::Pass
    }

    #[test]
    fn one_connection_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let passed = (0..1000)
            .filter(|_| passes(&mut l, &A, Some(1), t0))
            .count();
        assert_eq!(passed, PER_CONNECTION.burst as usize);
        // Another connection is not affected.
        assert!(passes(&mut l, &B, Some(2), t0));
        // One second later: the sustained rate.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..1000)
            .filter(|_| passes(&mut l, &A, Some(1), t1))
            .count();
        assert_eq!(passed, PER_CONNECTION.per_sec as usize);
    }

    #[test]
    fn many_connections_share_the_site_and_overall_limits() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let passed = (0..10_000u64)
            .filter(|c| passes(&mut l, &A, Some(*c), t0))
            .count();
        assert_eq!(passed, PER_SITE.burst as usize);
        // Another site still gets through, up to the overall limit.
        let passed = (0..10_000u64)
            .filter(|c| passes(&mut l, &B, Some(20_000 + c), t0))
            .count();
        assert_eq!(
            passed,
            (ALL_CONNECTIONS.burst - PER_SITE.burst).min(PER_SITE.burst) as usize
        );
        // The server's own lines have their own budget.
        assert!(passes(&mut l, &C, None, t0));
    }

    #[test]
    fn suppressed_lines_are_summed_up_once_per_period() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let mut describe = 0;
        for _ in 0..100 {
            match l.admit(&id(&A), Level::WARN, Some(7), t0) {
                Verdict::Pass => {}
                Verdict::Suppress { describe: d } => {
                    if d {
                        describe += 1;
                        l.describe(&id(&A), "flood".into());
                    }
                }
            }
        }
        assert_eq!(describe, 1);
        assert!(l.tick(t0 + Duration::from_secs(1), false).is_empty());
        let s = l.tick(t0 + SUMMARY_EVERY, false);
        assert_eq!(
            s,
            vec![Summary {
                level: Level::WARN,
                message: "flood".into(),
                count: 100 - u64::from(PER_CONNECTION.burst),
                connections: 1,
                conn: Some(7),
            }]
        );
        assert!(l.tick(t0 + SUMMARY_EVERY * 2, false).is_empty());
    }

    #[test]
    fn idle_connections_are_forgotten() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        for c in 0..100 {
            passes(&mut l, &A, Some(c), t0);
        }
        assert_eq!(l.tracked(), 100);
        l.tick(t0 + Duration::from_secs(60), false);
        assert_eq!(l.tracked(), 0);
    }
}
