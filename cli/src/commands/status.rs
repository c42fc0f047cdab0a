//! `deployer status`: per service, what runs (asked of the service itself), the tag recorded in
//! SSM, the last successful deploy recorded, whether they agree (drift), and the last outcome.

use deployer_core::{Artifact, ImageArtifact, Service};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::args::Global;
use crate::context::Context;
use crate::exit::{Exit, classify};
use crate::output::Printer;
use crate::rollout;
use crate::state::{self, DeployRecord, LastOutcome, PendingRecord};

#[derive(Debug, Serialize)]
struct Status {
    service: String,
    kind: deployer_core::Kind,
    /// `<ssm_prefix>/<service>/image-tag`.
    ssm_tag: Option<String>,
    live_artifact: Option<String>,
    live_summary: Option<String>,
    recorded: Option<DeployRecord>,
    previous: Option<DeployRecord>,
    pending: Option<PendingRecord>,
    last: Option<LastOutcome>,
    /// Whether the live artifact, the recorded deploy and the SSM tag agree.
    in_sync: bool,
    /// What disagrees, when something does.
    drift: Vec<String>,
    error: Option<String>,
}

pub(crate) async fn run(
    global: &Global,
    names: &[String],
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (ctx, names) = super::prepare_untagged(global, names, None).await?;
    let mut tasks = JoinSet::new();
    for (index, name) in names.iter().enumerate() {
        let (ctx, name) = (ctx.clone(), name.clone());
        tasks.spawn(async move {
            let service = &ctx.manifest.services[&name];
            (index, status(&ctx, service).await)
        });
    }
    let mut statuses = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        statuses.push(joined?);
    }
    statuses.sort_by_key(|(index, _)| *index);
    let statuses: Vec<Status> = statuses.into_iter().map(|(_, status)| status).collect();
    let failed = statuses.iter().any(|s| s.error.is_some());
    printer.result(&table(&statuses), &json!({ "services": statuses }));
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

async fn status(ctx: &Context, service: &Service) -> Status {
    let project = &ctx.manifest.project;
    let (tag_parameter, state_parameter) = (
        service.tag_parameter(project),
        state::state_parameter(project, service),
    );
    let (ssm_tag, record, live) = tokio::join!(
        ctx.state.get(&tag_parameter),
        ctx.state.service_state(&state_parameter),
        rollout::live_state(ctx, service),
    );
    let mut status = Status {
        service: service.name.clone(),
        kind: service.kind,
        ssm_tag: None,
        live_artifact: None,
        live_summary: None,
        recorded: None,
        previous: None,
        pending: None,
        last: None,
        in_sync: false,
        drift: Vec::new(),
        error: None,
    };
    let mut errors = Vec::new();
    match ssm_tag {
        Ok(tag) => status.ssm_tag = tag,
        Err(error) => errors.push(error.to_string()),
    }
    match record {
        Ok(record) => {
            status.recorded = record.current;
            status.previous = record.previous;
            status.pending = record.pending;
            status.last = record.last;
        }
        Err(error) => errors.push(error.to_string()),
    }
    match live {
        Ok(live) => {
            status.live_artifact = live.artifact;
            status.live_summary = Some(live.summary);
        }
        Err(error) => {
            let exit = classify(&error);
            errors.push(format!(
                "{error:#}{}",
                if exit == Exit::Usage {
                    " (configuration)"
                } else {
                    ""
                }
            ));
        }
    }
    if !errors.is_empty() {
        status.error = Some(errors.join("; "));
        return status;
    }
    match &status.recorded {
        None => status.drift.push("no successful deploy is recorded".into()),
        Some(recorded) => {
            let live_matches = status
                .live_artifact
                .as_deref()
                .is_some_and(|live| recorded_matches(recorded, live));
            if !live_matches {
                status.drift.push(format!(
                    "the service runs {} but the last deploy recorded {}",
                    status
                        .live_artifact
                        .as_deref()
                        .unwrap_or("nothing recognisable"),
                    recorded.artifact
                ));
            }
            if status.ssm_tag.as_deref() != Some(recorded.tag.as_str()) {
                status.drift.push(format!(
                    "SSM holds tag {} but the last deploy recorded {}",
                    status.ssm_tag.as_deref().unwrap_or("(none)"),
                    recorded.tag
                ));
            }
        }
    }
    if let Some(pending) = &status.pending {
        status.drift.push(format!(
            "a rollout to {} started {} is not confirmed: run `deployer wait`",
            pending.tag, pending.at
        ));
    }
    status.in_sync = status.drift.is_empty();
    status
}

fn recorded_matches(recorded: &DeployRecord, live: &str) -> bool {
    match recorded.artifact.split_once('@') {
        Some((repository_uri, digest)) => Artifact::Image(ImageArtifact {
            repository_uri: repository_uri.to_owned(),
            tag: recorded.tag.clone(),
            digest: Some(digest.to_owned()),
        })
        .matches_live(live),
        None => recorded.artifact == live,
    }
}

fn table(statuses: &[Status]) -> String {
    let mut text = format!(
        "{:<24} {:<13} {:<25} {:<9} {}\n",
        "SERVICE", "KIND", "SSM TAG", "STATE", "LAST OUTCOME"
    );
    for s in statuses {
        let state = if s.error.is_some() {
            "error"
        } else if s.in_sync {
            "in sync"
        } else {
            "drift"
        };
        let last = s
            .last
            .as_ref()
            .map(|l| format!("{} {} at {}", l.action, l.tag, l.at))
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            "{:<24} {:<13} {:<25} {:<9} {}\n",
            s.service,
            s.kind.as_str(),
            s.ssm_tag.as_deref().unwrap_or("-"),
            state,
            last
        ));
    }
    for s in statuses {
        if let Some(error) = &s.error {
            text.push_str(&format!("\n{}: {error}\n", s.service));
            continue;
        }
        text.push_str(&format!(
            "\n{}: live {}\n",
            s.service,
            s.live_summary.as_deref().unwrap_or("-")
        ));
        for drift in &s.drift {
            text.push_str(&format!("  drift: {drift}\n"));
        }
        if let Some(last) = s.last.as_ref().filter(|l| !l.ok) {
            text.push_str(&format!(
                "  last failure: {}\n",
                last.error.as_deref().unwrap_or("-")
            ));
        }
    }
    text
}
