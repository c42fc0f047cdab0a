//! Read what a live service wrote to CloudWatch Logs, and follow it as it comes: what
//! `deployer logs` prints and what a failed rollout's diagnosis shows of a runtime, an
//! endpoint or a function.
//!
//! A service names its logs as [`LogSource`]s (a group, the stream prefix that is this
//! service's in it, the values to hide: [`Deployer::log_sources`](deployer_core::Deployer::log_sources)).
//! [`LogReader::read`] returns their lines since a time, interleaved by time, the newest
//! `limit` of them; [`LogReader::follow`] returns the same lines and then every new one, each
//! once, until its callback says stop. Every line passes through the source's redaction. A
//! group that does not exist (yet) is reported in [`Lines::missing`], not as an error: a
//! function that never ran has no log group.
//!
//! It reads with `FilterLogEvents` (`logStreamNamePrefix`, `startTime`, every page), in the
//! source's region when it names one.
//!
//! # Using it alone
//!
//! Any tool that knows where a service logs can print its recent lines. `examples/logs-tail.rs`
//! is a whole program (`cargo run -p deployer-logs --example logs-tail -- /aws/lambda/my-fn
//! --since 10m --follow`).
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_cloudwatchlogs::Client) -> Result<(), deployer_logs::LogsError> {
//! use deployer_core::LogSource;
//! use deployer_logs::LogReader;
//!
//! let sources = [LogSource {
//!     group: "/ecs/app-api".into(),
//!     region: None,
//!     stream_prefix: Some("app/web/".into()),
//!     label: "web".into(),
//!     redact: vec!["postgres://app:pw@db/app".into()],
//! }];
//! let ten_minutes_ago = deployer_logs::now_ms() - 10 * 60 * 1000;
//! let read = LogReader::new(client).read(&sources, ten_minutes_ago, 100).await?;
//! for line in &read.lines {
//!     println!("{} {} | {}", line.timestamp_ms, line.source, line.message);
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
use deployer_aws::{Failure, Redactor};
use deployer_core::{LogLine, LogSource};

/// How often [`LogReader::follow`] asks for new lines by default.
pub const POLL: Duration = Duration::from_secs(2);

/// Pages of `FilterLogEvents` read per source and poll at most (10,000 events each): a
/// backlog past that is cut, the newest lines kept by the next poll.
const MAX_PAGES: usize = 20;

/// What could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// `FilterLogEvents` failed for a group.
    #[error("FilterLogEvents {group}: {message}")]
    Read {
        /// The log group.
        group: String,
        /// The error in one line, redacted.
        message: String,
        /// Whether a later try may succeed (throttling, a passing failure).
        retryable: bool,
    },
}

/// The lines read, and the groups that do not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    /// Oldest first, across every source.
    pub lines: Vec<LogLine>,
    /// The log groups that do not exist (nothing wrote to them yet).
    pub missing: Vec<String>,
}

/// Reads log lines of [`LogSource`]s.
#[derive(Clone, Debug)]
pub struct LogReader {
    client: Client,
    poll: Duration,
}

impl LogReader {
    /// A reader with `client` (groups in another region get a client of that region).
    pub fn new(client: Client) -> Self {
        LogReader { client, poll: POLL }
    }

    /// [`follow`](LogReader::follow) asks every `poll` (default [`POLL`]).
    #[must_use]
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The newest `limit` lines `sources` wrote since `since_ms` (milliseconds since the
    /// epoch), oldest first.
    pub async fn read(
        &self,
        sources: &[LogSource],
        since_ms: i64,
        limit: usize,
    ) -> Result<Lines, LogsError> {
        let mut tail = Tail::new(sources, since_ms);
        let mut read = tail.next(self).await?;
        let extra = read.lines.len().saturating_sub(limit);
        read.lines.drain(..extra);
        Ok(read)
    }

    /// Every line `sources` wrote since `since_ms`, then every new one as it comes, each once
    /// and in time order within a poll, given to `each` until it returns
    /// [`ControlFlow::Break`]. Groups that do not exist are given to `missing` once per poll
    /// until they appear. A read that fails in a way a later poll may not (access denied, a
    /// wrong group name) ends it with the error; throttling and passing failures are tried
    /// again at the next poll.
    pub async fn follow(
        &self,
        sources: &[LogSource],
        since_ms: i64,
        mut each: impl FnMut(&LogLine) -> ControlFlow<()>,
        mut missing: impl FnMut(&str),
    ) -> Result<(), LogsError> {
        let mut tail = Tail::new(sources, since_ms);
        loop {
            match tail.next(self).await {
                Ok(read) => {
                    for group in &read.missing {
                        missing(group);
                    }
                    for line in &read.lines {
                        if each(line).is_break() {
                            return Ok(());
                        }
                    }
                }
                Err(LogsError::Read {
                    retryable: true, ..
                }) => {}
                Err(error) => return Err(error),
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// Where each source has been read up to.
struct Tail<'s> {
    sources: &'s [LogSource],
    cursors: Vec<Cursor>,
}

/// The newest timestamp read of a source, and the events read at exactly that time
/// (`startTime` is inclusive: they come back at the next read).
#[derive(Clone, Debug)]
struct Cursor {
    since_ms: i64,
    seen: HashSet<String>,
}

impl<'s> Tail<'s> {
    fn new(sources: &'s [LogSource], since_ms: i64) -> Self {
        Tail {
            sources,
            cursors: vec![
                Cursor {
                    since_ms,
                    seen: HashSet::new(),
                };
                sources.len()
            ],
        }
    }

    /// The lines not read before, of every source, oldest first.
    async fn next(&mut self, reader: &LogReader) -> Result<Lines, LogsError> {
        let mut read = Lines::default();
        for (source, cursor) in self.sources.iter().zip(&mut self.cursors) {
            match events(reader, source, cursor.since_ms).await? {
                None => read.missing.push(source.group.clone()),
                Some(events) => read.lines.extend(cursor.advance(source, events)),
            }
        }
        read.lines.sort_by_key(|line| line.timestamp_ms);
        Ok(read)
    }
}

impl Cursor {
    /// The lines of `events` not seen before, redacted; moves the cursor past them.
    fn advance(&mut self, source: &LogSource, events: Vec<FilteredLogEvent>) -> Vec<LogLine> {
        let redactor = Redactor::new(source.redact.iter().cloned());
        let mut lines = Vec::new();
        let mut newest = self.since_ms;
        let mut at_newest = Vec::new();
        for event in events {
            let timestamp = event.timestamp().unwrap_or_default();
            let stream = event.log_stream_name().unwrap_or_default();
            let message = event.message().unwrap_or_default();
            let id = event
                .event_id()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{stream}\u{0}{timestamp}\u{0}{message}"));
            if timestamp < self.since_ms || !self.seen.insert(id.clone()) {
                continue;
            }
            if timestamp > newest {
                newest = timestamp;
                at_newest.clear();
            }
            if timestamp == newest {
                at_newest.push(id);
            }
            lines.push(LogLine {
                timestamp_ms: timestamp,
                source: source_name(source, stream),
                message: redactor.apply(message.trim_end()),
            });
        }
        if newest > self.since_ms {
            self.since_ms = newest;
            self.seen = at_newest.into_iter().collect();
        }
        lines
    }
}

/// `label/<the stream's name past the prefix>`: `web/1a2b…` for an ECS container of a task.
fn source_name(source: &LogSource, stream: &str) -> String {
    let rest = source
        .stream_prefix
        .as_deref()
        .and_then(|prefix| stream.strip_prefix(prefix))
        .unwrap_or(stream);
    format!("{}/{rest}", source.label)
}

/// Every event of `source` since `since_ms` (`None` when its group does not exist).
async fn events(
    reader: &LogReader,
    source: &LogSource,
    since_ms: i64,
) -> Result<Option<Vec<FilteredLogEvent>>, LogsError> {
    let client = client_in(&reader.client, source.region.as_deref());
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut request = client
            .filter_log_events()
            .log_group_name(&source.group)
            .start_time(since_ms);
        if let Some(prefix) = &source.stream_prefix {
            request = request.log_stream_name_prefix(prefix);
        }
        if let Some(token) = token.take() {
            request = request.next_token(token);
        }
        match request.send().await {
            Ok(page) => {
                events.extend(page.events().iter().cloned());
                match page.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                    _ => break,
                }
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => {
                let failure = Failure::new(&error, &Redactor::default());
                return Err(LogsError::Read {
                    group: source.group.clone(),
                    retryable: failure.is_retryable(),
                    message: failure.message,
                });
            }
        }
    }
    Ok(Some(events))
}

/// `client`, or a client like it in `region` when that is another region (an ECS container's
/// `awslogs-region`).
pub fn client_in(client: &Client, region: Option<&str>) -> Client {
    match region {
        Some(region) if client.config().region().map(|r| r.as_ref()) != Some(region) => {
            let config = client
                .config()
                .to_builder()
                .region(aws_sdk_cloudwatchlogs::config::Region::new(
                    region.to_owned(),
                ))
                .build();
            Client::from_conf(config)
        }
        _ => client.clone(),
    }
}

/// Now, in milliseconds since the epoch (what `since` values are measured in).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
