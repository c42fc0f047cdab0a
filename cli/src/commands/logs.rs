//! `deployer logs`: the live services' recent log lines (ECS containers through `awslogs`, a
//! function's log group, an AgentCore runtime's, a SageMaker endpoint's), interleaved by time;
//! `--follow` keeps printing new ones until interrupted. Every line is redacted with the
//! resource's environment values and the run's secrets.

use crate::args::{Global, LogsArgs};
use crate::exit::Exit;
use crate::output::Printer;

#[cfg(not(feature = "logs"))]
pub(crate) async fn run(
    _global: &Global,
    _args: &LogsArgs,
    _printer: &Printer,
) -> anyhow::Result<Exit> {
    Err(crate::exit::UsageError(
        "this build of deployer has no `logs` (build the cli with the `logs` feature)".into(),
    )
    .into())
}

#[cfg(feature = "logs")]
pub(crate) async fn run(
    global: &Global,
    args: &LogsArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    use std::ops::ControlFlow;

    use anyhow::Context as _;
    use deployer_core::LogLine;
    use deployer_engine::Targets as _;
    use serde_json::json;

    let (ctx, names) = super::prepare_untagged(global, &args.select.services, None).await?;
    let several = names.len() > 1;
    let secrets = ctx.secrets();
    let mut sources = Vec::new();
    for name in &names {
        let service = &ctx.manifest.services[name];
        let target = crate::targets::CliTargets::new(&ctx)
            .deployer(service)
            .map_err(anyhow::Error::new)?;
        let live = target
            .read_live()
            .await
            .with_context(|| format!("{name}: cannot read {}", target.target()))?;
        let found = target
            .log_sources(&live)
            .await
            .with_context(|| format!("{name}: cannot tell where {} logs", target.target()))?;
        if found.is_empty() {
            printer.warn(&format!(
                "{name}: {} writes no logs deployer can read (a {} service; an ECS container needs the awslogs driver with awslogs-stream-prefix)",
                target.target(),
                service.kind.as_str()
            ));
        }
        for mut source in found {
            if several {
                source.label = format!("{name} {}", source.label);
            }
            source.redact.extend(secrets.iter().cloned());
            sources.push(source);
        }
    }
    let since = deployer_logs::now_ms() - i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX);
    let reader = ctx.log_reader();
    let json_line = |line: &LogLine| {
        json!({
            "timestamp": crate::diagnosis::timestamp(line.timestamp_ms),
            "timestamp_ms": line.timestamp_ms,
            "source": line.source,
            "message": line.message,
        })
    };
    let text_line = |line: &LogLine| {
        format!(
            "{} {} | {}",
            crate::diagnosis::timestamp(line.timestamp_ms),
            line.source,
            line.message
        )
    };
    if !args.follow {
        let read = reader.read(&sources, since, args.limit).await?;
        for group in &read.missing {
            printer.warn(&format!(
                "log group {group} does not exist (nothing was written to it yet)"
            ));
        }
        let text: String = read.lines.iter().map(|l| text_line(l) + "\n").collect();
        let lines: Vec<_> = read.lines.iter().map(json_line).collect();
        printer.result(
            &text,
            &json!({ "services": names, "lines": lines, "missing_groups": read.missing }),
        );
        return Ok(Exit::Success);
    }
    let json = global.json;
    let mut warned = std::collections::BTreeSet::new();
    let follow = reader.follow(
        &sources,
        since,
        |line| {
            let rendered = if json {
                json_line(line).to_string()
            } else {
                text_line(line)
            };
            printer.line(&rendered);
            ControlFlow::Continue(())
        },
        |group| {
            if warned.insert(group.to_owned()) {
                printer.warn(&format!(
                    "log group {group} does not exist yet; waiting for it"
                ));
            }
        },
    );
    tokio::select! {
        result = follow => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Exit::Success)
}
