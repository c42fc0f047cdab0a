//! `deployer status`: per service, what runs (asked of the service itself), the tag recorded in
//! SSM, the last successful deploy recorded, whether they agree (drift), and the last outcome.

use deployer_core::{Artifact, ImageArtifact, Presence, Service};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::args::Global;
use crate::context::Context;
use crate::exit::{Exit, classify};
use crate::output::Printer;
use deployer_engine::Targets as _;
use deployer_engine::records::{DeployRecord, LastOutcome, Names, PendingRecord, Records};

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
    /// What would break later although everything agrees now: the recorded `previous`
    /// deploy can no longer be rolled back to (its image left the registry, its Lambda
    /// version was deleted); the IaC that owns the target would put another image back on
    /// its next deploy, or cannot be read to tell (`crate::iac`).
    warnings: Vec<String>,
    /// A config service: the items that differ from the set applied (changed, added or
    /// removed out of band), secret values hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<deployer_core::Changes>,
    /// An AgentCore service's named endpoints: the version each serves and the one it should
    /// (the recorded deploy's version).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<crate::endpoints::EndpointView>,
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
    for status in &statuses {
        for warning in &status.warnings {
            crate::github::warning(&status.service, warning);
        }
    }
    let failed = statuses.iter().any(|s| s.error.is_some());
    printer.result(&table(&statuses), &json!({ "services": statuses }));
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

async fn status(ctx: &Context, service: &Service) -> Status {
    let names = Names::of(&ctx.manifest.project, &service.name);
    let target = crate::targets::CliTargets::new(ctx)
        .deployer(service)
        .map_err(anyhow::Error::new);
    let (records, live) = tokio::join!(Records::read(ctx.store.as_ref(), &names), async {
        let target = target.as_deref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let live = target.read_live().await.map_err(anyhow::Error::new)?;
        // Targets made of items (config sets) compare each item with the set applied.
        let items = target.drift(&live).await.map_err(anyhow::Error::new)?;
        Ok::<_, anyhow::Error>((live, items))
    });
    let (ssm_tag, record) = match records {
        Ok(records) => (Ok(records.tag), Ok(records.state)),
        Err(error) => (Err(error.clone()), Err(error)),
    };
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
        warnings: Vec::new(),
        items: None,
        endpoints: Vec::new(),
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
    let mut item_drift = Vec::new();
    let mut live_ids = None;
    match live {
        Ok((live, items)) => {
            live_ids = Some(live.ids.clone());
            status.live_artifact = live.artifact;
            status.live_summary = Some(live.summary);
            if let Some(items) = items {
                item_drift = drifted_items(&items);
                status.items = Some(items);
            }
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
    status.drift.extend(item_drift);
    if let Some(ids) = &live_ids {
        // Each endpoint should serve the recorded deploy's version (also after a rollback
        // that moved only the endpoints); without a record, the runtime's latest.
        let wanted = status
            .recorded
            .as_ref()
            .and_then(|recorded| crate::endpoints::runtime_version(&recorded.ids))
            .or_else(|| crate::endpoints::runtime_version(ids));
        status.endpoints = crate::endpoints::views(service, ids, |own| {
            wanted.clone().or_else(|| own.map(str::to_owned))
        });
        for endpoint in &status.endpoints {
            if endpoint.live_version != endpoint.target_version {
                status.drift.push(format!(
                    "endpoint {} serves version {} but should serve version {}",
                    endpoint.name,
                    endpoint.live_version.as_deref().unwrap_or("none"),
                    endpoint.target_version.as_deref().unwrap_or("none")
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
    if let (Some(previous), Ok(target)) = (&status.previous, &target) {
        let artifacts = crate::engine::CliArtifacts::new(ctx, &[]);
        match deployer_engine::restorable(service, previous, target.as_ref(), &artifacts).await {
            Ok(Presence::Present) => {}
            Ok(Presence::Gone { why }) => status.warnings.push(format!(
                "`deployer rollback` would fail: the previous deploy ({}, {}) cannot be restored: {why}",
                previous.tag, previous.artifact
            )),
            Err(error) => status.warnings.push(format!(
                "cannot tell whether the previous deploy ({}) can be restored: {error}",
                previous.tag
            )),
        }
    }
    // Would the next IaC deploy put another image back?
    if let Ok(target) = &target {
        let recorded_tag = status
            .recorded
            .as_ref()
            .map(|r| r.tag.as_str())
            .or(status.ssm_tag.as_deref());
        let warnings = crate::iac::warnings(
            ctx,
            service,
            target.as_ref(),
            status.live_artifact.as_deref(),
            recorded_tag,
        )
        .await;
        status.warnings.extend(warnings);
    }
    status
}

/// One drift line per item that differs from the set applied.
fn drifted_items(items: &deployer_core::Changes) -> Vec<String> {
    use deployer_core::Change;
    items
        .items
        .iter()
        .map(|item| {
            let what = match item.change {
                Change::Added => {
                    "is in the set applied but not in the store (deleted out of band)".to_owned()
                }
                Change::Removed => {
                    "is in the store with this service's mark but not in the set applied".to_owned()
                }
                Change::NotOwned | Change::Adopted => {
                    "lost this service's owner mark (changed out of band)".to_owned()
                }
                _ => {
                    let names: Vec<&str> =
                        item.attributes.iter().map(|a| a.name.as_str()).collect();
                    format!("changed out of band: {}", names.join(", "))
                }
            };
            format!("item {} {what}", item.item)
        })
        .collect()
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
        for endpoint in &s.endpoints {
            text.push_str(&format!("  {}\n", endpoint.line()));
        }
        for drift in &s.drift {
            text.push_str(&format!("  drift: {drift}\n"));
        }
        for warning in &s.warnings {
            text.push_str(&format!("  warning: {warning}\n"));
        }
        if let Some(last) = s.last.as_ref().filter(|l| !l.ok) {
            text.push_str(&format!(
                "  last failure: {}\n",
                last.error.as_deref().unwrap_or("-")
            ));
            // What the target said then, indented under it.
            if let Some(diagnosis) = &last.diagnosis {
                for line in crate::diagnosis::text(diagnosis).lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    text
}
