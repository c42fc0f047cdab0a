//! The reader against mocked `FilterLogEvents` answers (sequential rules: a request beyond the
//! listed ones fails the test): prefixes and start times sent, pages followed, sources
//! interleaved, lines redacted and given once, a missing group reported, errors classified.

use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::operation::filter_log_events::{
    FilterLogEventsError, FilterLogEventsOutput,
};
use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
use aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::{LogLine, LogSource};

use crate::{LogReader, LogsError};

fn source(group: &str, prefix: Option<&str>, label: &str) -> LogSource {
    LogSource {
        group: group.into(),
        region: None,
        stream_prefix: prefix.map(str::to_owned),
        label: label.into(),
        redact: vec!["s3cr3t-value".into()],
    }
}

fn event(id: &str, at: i64, stream: &str, message: &str) -> FilteredLogEvent {
    FilteredLogEvent::builder()
        .event_id(id)
        .timestamp(at)
        .log_stream_name(stream)
        .message(message)
        .build()
}

/// One `FilterLogEvents` answer for `group` asked from `since` (with `prefix`, `token`).
fn page(
    group: &'static str,
    prefix: Option<&'static str>,
    since: i64,
    token: Option<&'static str>,
    events: Vec<FilteredLogEvent>,
    next: Option<&'static str>,
) -> Rule {
    mock!(Client::filter_log_events)
        .match_requests(move |r| {
            r.log_group_name() == Some(group)
                && r.log_stream_name_prefix() == prefix
                && r.start_time() == Some(since)
                && r.next_token() == token
                && r.log_stream_names().is_empty()
        })
        .then_output(move || {
            FilterLogEventsOutput::builder()
                .set_events(Some(events.clone()))
                .set_next_token(next.map(str::to_owned))
                .build()
        })
}

fn reader(rules: &[&Rule]) -> LogReader {
    LogReader::new(mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::Sequential,
        rules
    ))
    .poll_every(Duration::from_millis(1))
}

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("{} {} {}", l.timestamp_ms, l.source, l.message))
        .collect()
}

#[tokio::test]
async fn sources_are_read_by_prefix_every_page_and_interleaved_by_time() {
    let first = page(
        "/ecs/web",
        Some("app/web/"),
        1000,
        None,
        vec![event("a", 1001, "app/web/t1", "listening on :8080\n")],
        Some("page-2"),
    );
    let second = page(
        "/ecs/web",
        Some("app/web/"),
        1000,
        Some("page-2"),
        vec![event("b", 1005, "app/web/t1", "db=s3cr3t-value")],
        None,
    );
    let lambda = page(
        "/aws/lambda/fn",
        None,
        1000,
        None,
        vec![event(
            "c",
            1003,
            "2026/12/04/[$LATEST]ab",
            "START RequestId",
        )],
        None,
    );
    let reader = reader(&[&first, &second, &lambda]);
    let read = reader
        .read(
            &[
                source("/ecs/web", Some("app/web/"), "web"),
                source("/aws/lambda/fn", None, "function"),
            ],
            1000,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        texts(&read.lines),
        [
            "1001 web/t1 listening on :8080",
            "1003 function/2026/12/04/[$LATEST]ab START RequestId",
            "1005 web/t1 db=***",
        ]
    );
    assert!(read.missing.is_empty());
}

#[tokio::test]
async fn read_keeps_the_newest_lines_and_reports_a_group_that_does_not_exist() {
    let events = (0..5)
        .map(|i| event(&format!("e{i}"), 2000 + i, "s", &format!("line {i}")))
        .collect();
    let lines = page("/aws/lambda/fn", None, 0, None, events, None);
    let missing = mock!(Client::filter_log_events).then_error(|| {
        FilterLogEventsError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("The specified log group does not exist.")
                .build(),
        )
    });
    let reader = reader(&[&lines, &missing]);
    let read = reader
        .read(
            &[
                source("/aws/lambda/fn", None, "function"),
                source(
                    "/aws/bedrock-agentcore/runtimes/rt-DEFAULT",
                    None,
                    "runtime",
                ),
            ],
            0,
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        texts(&read.lines),
        ["2003 function/s line 3", "2004 function/s line 4"]
    );
    assert_eq!(read.missing, ["/aws/bedrock-agentcore/runtimes/rt-DEFAULT"]);
}

#[tokio::test]
async fn follow_gives_each_line_once_and_asks_again_from_the_newest_time() {
    // First poll: two lines, the newest at 3000. The second poll asks from 3000 (inclusive)
    // and gets that line again with a new one at the same time and a later one.
    let first = page(
        "/ecs/web",
        None,
        100,
        None,
        vec![event("a", 2000, "s", "one"), event("b", 3000, "s", "two")],
        None,
    );
    let again = page(
        "/ecs/web",
        None,
        3000,
        None,
        vec![
            event("b", 3000, "s", "two"),
            event("c", 3000, "s", "three"),
            event("d", 3500, "s", "four"),
        ],
        None,
    );
    let reader = reader(&[&first, &again]);
    let mut seen = Vec::new();
    reader
        .follow(
            &[source("/ecs/web", None, "web")],
            100,
            |line| {
                seen.push(line.message.clone());
                if seen.len() == 4 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(seen, ["one", "two", "three", "four"]);
}

fn failing(code: &'static str, message: &'static str) -> Rule {
    mock!(Client::filter_log_events).then_error(move || {
        FilterLogEventsError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code(code)
                .message(message)
                .build(),
        )
    })
}

#[tokio::test]
async fn follow_rides_out_throttling() {
    let throttled = failing("ThrottlingException", "Rate exceeded");
    let after = page(
        "/ecs/web",
        None,
        0,
        None,
        vec![event("a", 10, "s", "back")],
        None,
    );
    let reader = reader(&[&throttled, &after]);
    let mut seen = Vec::new();
    reader
        .follow(
            &[source("/ecs/web", None, "web")],
            0,
            |line| {
                seen.push(line.message.clone());
                ControlFlow::Break(())
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(seen, ["back"]);
}

#[tokio::test]
async fn follow_stops_at_access_denied_with_the_group_and_the_error() {
    let denied = failing(
        "AccessDeniedException",
        "not authorized to perform: logs:FilterLogEvents",
    );
    let reader = reader(&[&denied]);
    let error = reader
        .follow(
            &[source("/ecs/web", None, "web")],
            0,
            |_| ControlFlow::Continue(()),
            |_| {},
        )
        .await
        .unwrap_err();
    let LogsError::Read {
        group,
        retryable,
        message,
    } = &error;
    assert_eq!(group, "/ecs/web");
    assert!(!retryable);
    assert!(message.contains("AccessDeniedException"), "{message}");
}
