//! A fault-injecting proxy in front of the bed's moto, one per test: AWS throttling errors in
//! each protocol's own form, HTTP 500/503, added latency, dropped connections, holds that
//! keep a chosen request back until a test has killed its client, and rules ([`Rule`]) that
//! hit chosen requests (lose the answer to the lock's create, deny one renewal read). The proxy is
//! `xtask/testbed/faultproxy.py` (its module doc describes every fault and count); this is the
//! handle a test starts, reconfigures, reads the counts of, and stops.
//!
//! ```ignore
//! let proxy = FaultProxy::start(bed, &Faults::new().throttle(0.3).http500(0.025).http503(0.025));
//! let out = Deployer::new().bed(bed).env("AWS_ENDPOINT_URL", proxy.url()).args(["deploy", "--all"]).run();
//! let stats = proxy.stats();
//! eprintln!("{stats}");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Testbed, http};

/// What the proxy injects. Shares are probabilities per request (one draw picks at most one of
/// `throttle`, `http500`, `http503`, `drop`; their sum is at most 1); `latency` is drawn apart.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Faults {
    /// Seed of the proxy's dice (the same request order then gets the same faults).
    pub seed: u64,
    /// Share answered with the protocol's throttling error.
    pub throttle: f64,
    /// Share answered with HTTP 500.
    pub http500: f64,
    /// Share answered with HTTP 503.
    pub http503: f64,
    /// Share whose connection is closed without an answer (never forwarded).
    pub drop: f64,
    /// Share delayed by `latency_ms` before going on.
    pub latency: f64,
    /// The added latency.
    pub latency_ms: u64,
    /// Signing names the dice apply to (`ecs`, `lambda`, `ssm`, …); empty: every service.
    pub services: Vec<String>,
    /// Requests held back (never faulted).
    pub holds: Vec<Hold>,
    /// Targeted faults: the first rule that fires on a request decides (before holds and dice).
    pub rules: Vec<Rule>,
}

/// What a [`Rule`] does to a request it fires on (the proxy's module doc, `rules`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Forwarded to moto (it takes effect), then the connection is closed without an answer:
    /// the SDK retries a request that already happened.
    LoseAnswer,
    /// A non-retryable `AccessDeniedException`, never forwarded.
    Deny,
    /// The protocol's throttling error, never forwarded.
    Throttle,
    /// HTTP 500, never forwarded.
    Http500,
    /// HTTP 503, never forwarded.
    Http503,
    /// The connection closed without an answer, never forwarded.
    Drop,
}

/// A targeted fault: requests whose operation matches `operation` (a regex, as for [`Hold`]),
/// whose body contains `body` and (when set) whose signing name is `service`; the first
/// `after` of them go on untouched, the next `times` (0: all the rest) get `action`.
///
/// ```ignore
/// // The answer to the lock's create is lost once; the SDK's retry meets the claim it created.
/// let faults = Faults::new().rule(Rule::new("^PutParameter$", RuleAction::LoseAnswer).body("/lock\""));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Regex on the operation name.
    pub operation: String,
    /// A substring the body must contain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The signing name the request must have (`ssm`, `lambda`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What to do.
    pub action: RuleAction,
    /// How many matching requests get the action (0: every one after `after`).
    pub times: u64,
    /// How many matching requests to let through first.
    pub after: u64,
}

impl Rule {
    /// `action` on the first request whose operation matches `operation`.
    pub fn new(operation: &str, action: RuleAction) -> Self {
        Rule {
            operation: operation.to_owned(),
            body: None,
            service: None,
            action,
            times: 1,
            after: 0,
        }
    }

    /// Only requests whose body contains `needle`.
    pub fn body(mut self, needle: &str) -> Self {
        self.body = Some(needle.to_owned());
        self
    }

    /// Only requests signed for `service`.
    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_owned());
        self
    }

    /// Acts on `times` matching requests (0: all of them, after `after`).
    pub fn times(mut self, times: u64) -> Self {
        self.times = times;
        self
    }

    /// Lets the first `after` matching requests through untouched.
    pub fn after(mut self, after: u64) -> Self {
        self.after = after;
        self
    }
}

/// Holds every request whose operation matches `operation` (a regex, e.g. `^PutParameter$`, or
/// `^PUT /2015-03-31/functions/` for REST protocols) and whose body contains `body`, for `ms`
/// milliseconds; then forwards it only if its client is still connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// Regex on the operation name.
    pub operation: String,
    /// A substring the body must contain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// How long to hold.
    pub ms: u64,
}

impl Faults {
    /// Nothing injected: a plain pass-through proxy (seed 1).
    pub fn new() -> Self {
        Faults {
            seed: 1,
            ..Faults::default()
        }
    }

    /// With `share` of the requests throttled.
    pub fn throttle(mut self, share: f64) -> Self {
        self.throttle = share;
        self
    }

    /// With `share` of the requests answered HTTP 500.
    pub fn http500(mut self, share: f64) -> Self {
        self.http500 = share;
        self
    }

    /// With `share` of the requests answered HTTP 503.
    pub fn http503(mut self, share: f64) -> Self {
        self.http503 = share;
        self
    }

    /// With `share` of the connections dropped without an answer.
    pub fn drop_connections(mut self, share: f64) -> Self {
        self.drop = share;
        self
    }

    /// With `share` of the requests delayed by `ms`.
    pub fn latency(mut self, share: f64, ms: u64) -> Self {
        self.latency = share;
        self.latency_ms = ms;
        self
    }

    /// With the dice seeded by `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Faults only for these signing names.
    pub fn only(mut self, services: &[&str]) -> Self {
        self.services = services.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// With one more hold.
    pub fn hold(mut self, operation: &str, body: Option<&str>, ms: u64) -> Self {
        self.holds.push(Hold {
            operation: operation.to_owned(),
            body: body.map(str::to_owned),
            ms,
        });
        self
    }

    /// With one more rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    fn json(&self) -> String {
        serde_json::to_string(self).expect("the fault configuration serializes")
    }
}

/// Counts of one kind of request (per service, per operation).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Row {
    /// Requests seen.
    pub requests: u64,
    /// Of which faulted.
    pub faulted: u64,
    /// Of which SDK retries (attempt above 1).
    pub retries: u64,
}

/// Faulted requests by kind.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Faulted {
    /// Throttling errors.
    pub throttle: u64,
    /// HTTP 500.
    pub http500: u64,
    /// HTTP 503.
    pub http503: u64,
    /// Dropped connections.
    pub drop: u64,
    /// Access denied by a rule.
    #[serde(default)]
    pub deny: u64,
    /// Answers lost by a rule (the request was forwarded).
    #[serde(default)]
    pub lose_answer: u64,
}

impl Faulted {
    /// All faulted requests.
    pub fn total(&self) -> u64 {
        self.throttle + self.http500 + self.http503 + self.drop + self.deny + self.lose_answer
    }
}

/// A configured rule and its counts (`rules` in the proxy's counts, in configuration order).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RuleStats {
    /// The rule's operation regex.
    pub operation: String,
    /// The rule's action (`lose_answer`, `deny`, …).
    pub action: String,
    /// Matching requests seen.
    pub matched: u64,
    /// Requests the rule acted on.
    pub fired: u64,
}

/// What the proxy saw and did (`GET /_faultproxy/stats`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ProxyStats {
    /// AWS requests seen.
    pub requests: u64,
    /// Forwarded to moto.
    pub forwarded: u64,
    /// Faulted, by kind.
    pub faulted: Faulted,
    /// Requests delayed by the latency share.
    pub delayed: u64,
    /// Total latency added.
    pub delay_ms: u64,
    /// Requests held by a hold.
    pub held: u64,
    /// Requests being held right now.
    pub holding: u64,
    /// Held requests whose client went away: never forwarded.
    pub abandoned: u64,
    /// Requests that were SDK retries (`amz-sdk-request: attempt=N` with N > 1).
    pub retries: u64,
    /// Faults injected into an SDK call's last attempt (`attempt=N; max=N`): the calling code
    /// got the error, the SDK's retries had run out.
    pub exhausted: u64,
    /// The highest attempt number seen.
    pub max_attempt: u64,
    /// Distinct SDK operation invocations (`amz-sdk-invocation-id`).
    pub invocations: u64,
    /// Per signing name.
    pub services: std::collections::BTreeMap<String, Row>,
    /// Per `<signing name> <operation>`.
    pub operations: std::collections::BTreeMap<String, Row>,
    /// The configured rules with their counts.
    #[serde(default)]
    pub rules: Vec<RuleStats>,
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} faulted (throttled {}, HTTP 500 {}, HTTP 503 {}, dropped {}), {} SDK retries \
             (max attempt {}, {} calls out of attempts), {} operation calls, {} delayed ({} ms), {} held, \
             {} abandoned",
            self.requests,
            self.faulted.total(),
            self.faulted.throttle,
            self.faulted.http500,
            self.faulted.http503,
            self.faulted.drop,
            self.retries,
            self.max_attempt,
            self.exhausted,
            self.invocations,
            self.delayed,
            self.delay_ms,
            self.held,
            self.abandoned
        )?;
        let services: Vec<String> = self
            .services
            .iter()
            .map(|(name, row)| format!("{name} {}/{}", row.faulted, row.requests))
            .collect();
        if !services.is_empty() {
            write!(f, "; faulted/seen per service: {}", services.join(", "))?;
        }
        for rule in &self.rules {
            write!(
                f,
                "; rule {} {}: matched {}, fired {}",
                rule.operation, rule.action, rule.matched, rule.fired
            )?;
        }
        Ok(())
    }
}

/// A running proxy; stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

/// `xtask/testbed/faultproxy.py` in this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/testbed/faultproxy.py")
}

impl FaultProxy {
    /// Starts a proxy in front of the bed's moto with `faults`, on a free loopback port, and
    /// waits until it listens. It ends with this test process (owner watchdog) at the latest.
    pub fn start(bed: &Testbed, faults: &Faults) -> FaultProxy {
        let dir = tempfile::Builder::new()
            .prefix("deployer-faultproxy-")
            .tempdir()
            .expect("cannot create a temp dir");
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(dir.path().join("log")).expect("cannot create the log");
        let child = Command::new(&bed.moto().python)
            .arg(script())
            .args(["--target", &bed.moto().url, "--config", &faults.json()])
            .arg("--port-file")
            .arg(&port_file)
            .env("DEPLOYER_TESTBED_OWNER_PID", std::process::id().to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script().display()));
        let mut proxy = FaultProxy {
            child,
            url: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse::<u16>()
            {
                break port;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("the fault proxy exited ({status}): {}", proxy.log());
            }
            assert!(
                Instant::now() < deadline,
                "the fault proxy did not listen within 20 s: {}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        proxy.url = format!("http://127.0.0.1:{port}");
        proxy
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The proxy's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    /// The counts so far.
    pub fn stats(&self) -> ProxyStats {
        let url = format!("{}/_faultproxy/stats", self.url);
        let response = http::request("GET", &url, &[], &[])
            .unwrap_or_else(|e| panic!("GET {url}: {e}; proxy log: {}", self.log()));
        assert_eq!(response.status, 200, "GET {url}: {}", response.text());
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("GET {url}: {e}: {}", response.text()))
    }

    /// Replaces the configuration; the counts stay.
    pub fn configure(&self, faults: &Faults) {
        let url = format!("{}/_faultproxy/config", self.url);
        let body = faults.json();
        let response = http::request(
            "PUT",
            &url,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert_eq!(response.status, 200, "PUT {url}: {}", response.text());
    }

    /// Zeroes the counts.
    pub fn reset(&self) {
        let url = format!("{}/_faultproxy/reset", self.url);
        let response =
            http::request("POST", &url, &[], &[]).unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(response.status, 200, "POST {url}: {}", response.text());
    }

    /// Waits until at least `count` requests are being held (a client is blocked in the call a
    /// hold matched); panics after `timeout`.
    pub fn wait_holding(&self, count: u64, timeout: Duration) -> ProxyStats {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if stats.holding >= count {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} held requests within {timeout:?}: {stats}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the proxy and returns its last counts.
    pub fn stop(mut self) -> ProxyStats {
        let stats = self.stats();
        let _ = self.child.kill();
        let _ = self.child.wait();
        stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
