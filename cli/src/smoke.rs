//! Smoke checks after a successful rollout: an HTTP request, a command, or an invoke of the
//! Lambda function or AgentCore runtime — the engine's [`SmokeChecks`]. A failed check marks
//! the service failed (and, with `rollback_on_smoke_failure`, the engine rolls back). The
//! check's output is shown with secret values redacted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use deployer_core::manifest::{Smoke, SmokeCheck};
use deployer_core::poll::{Poll, PollPolicy, poll_until};
use deployer_core::{Phase, Progress, Service};
use deployer_engine::SmokeChecks;

use crate::context::Context;

/// At most this much of a check's output is kept.
const OUTPUT_LIMIT: usize = 2000;

/// The smoke checks of a run: commands run in the repository, HTTP requests, invokes through
/// the run's AWS configuration; secrets redacted from what they say.
pub(crate) struct CliSmoke {
    root: PathBuf,
    #[cfg_attr(not(any(feature = "lambda", feature = "agentcore")), allow(dead_code))]
    sdk: aws_config::SdkConfig,
    secrets: Vec<String>,
}

impl CliSmoke {
    pub(crate) fn new(ctx: &Context) -> Self {
        CliSmoke {
            root: ctx.manifest.root.clone(),
            sdk: ctx.sdk.clone(),
            secrets: ctx.secrets(),
        }
    }
}

#[async_trait::async_trait]
impl SmokeChecks for CliSmoke {
    async fn run(
        &self,
        service: &Service,
        check: &Smoke,
        ids: &BTreeMap<String, String>,
        progress: &Progress,
    ) -> Result<String, String> {
        run(self, service, check, ids, progress)
            .await
            .map_err(|error| format!("{error:#}"))
    }
}

/// Runs the service's smoke check; `Ok` carries its (redacted) output.
async fn run(
    ctx: &CliSmoke,
    service: &Service,
    smoke: &Smoke,
    ids: &BTreeMap<String, String>,
    progress: &Progress,
) -> anyhow::Result<String> {
    progress.emit(
        Phase::Done,
        format!("smoke check: {}", describe(&smoke.check)),
    );
    let secrets = &ctx.secrets;
    let result = match &smoke.check {
        SmokeCheck::Http {
            url,
            expect_status,
            expect,
        } => {
            http(
                url,
                *expect_status,
                expect.as_deref(),
                smoke.timeout,
                progress,
            )
            .await
        }
        SmokeCheck::Command { argv } => command(ctx, service, argv, smoke.timeout).await,
        SmokeCheck::Invoke { payload, expect } => {
            invoke(ctx, service, ids, payload, expect.as_deref(), smoke.timeout).await
        }
    };
    match result {
        Ok(output) => Ok(redact(&output, secrets)),
        Err(error) => Err(anyhow!(
            "smoke check failed: {}",
            redact(&format!("{error:#}"), secrets)
        )),
    }
}

fn describe(check: &SmokeCheck) -> String {
    match check {
        SmokeCheck::Http {
            url, expect_status, ..
        } => format!("GET {url} → {expect_status}"),
        SmokeCheck::Command { argv } => format!("run {}", argv.join(" ")),
        SmokeCheck::Invoke { .. } => "invoke".into(),
    }
}

/// Replaces every secret value in `text` with `***`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

fn clip(text: &str) -> String {
    let text = text.trim();
    if text.len() <= OUTPUT_LIMIT {
        return text.to_owned();
    }
    let mut end = OUTPUT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …", &text[..end])
}

async fn http(
    url: &str,
    expect_status: u16,
    expect: Option<&str>,
    timeout: Duration,
    progress: &Progress,
) -> anyhow::Result<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10).min(timeout))
        .build()
        .context("cannot build the HTTP client")?;
    let policy = PollPolicy {
        interval: Duration::from_secs(1),
        max_interval: Duration::from_secs(5),
        timeout,
        call_timeout: Duration::from_secs(15),
    };
    // A new deployment may take a moment to serve: retry until the status is right or time is up.
    poll_until(&format!("{url} to answer {expect_status}"), &policy, || {
        let client = client.clone();
        async move {
            match client.get(url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    let body_ok = expect.is_none_or(|e| body.contains(e));
                    if status == expect_status && body_ok {
                        return Ok::<_, anyhow::Error>(Poll::Ready(format!(
                            "HTTP {status}: {}",
                            clip(&body)
                        )));
                    }
                    let state = format!(
                        "HTTP {status}{}: {}",
                        if body_ok {
                            ""
                        } else {
                            " (expected text missing)"
                        },
                        clip(&body)
                    );
                    progress.detail(Phase::Done, format!("smoke: {state}"));
                    Ok(Poll::Pending(state))
                }
                Err(error) => Ok(Poll::Pending(format!("no answer: {error}"))),
            }
        }
    })
    .await
    .map_err(|error| anyhow!("{error}"))
}

async fn command(
    ctx: &CliSmoke,
    service: &Service,
    argv: &[String],
    timeout: Duration,
) -> anyhow::Result<String> {
    let (program, args) = argv.split_first().context("empty smoke command")?;
    let mut child = tokio::process::Command::new(program);
    child
        .args(args)
        .current_dir(&ctx.root)
        .env("DEPLOYER_SERVICE", &service.name)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, child.output())
        .await
        .map_err(|_| {
            anyhow!(
                "`{}` did not finish within {}s",
                argv.join(" "),
                timeout.as_secs()
            )
        })?
        .with_context(|| format!("cannot run `{program}`"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(clip(&text))
    } else {
        bail!(
            "`{}` exited with {}: {}",
            argv.join(" "),
            output
                .status
                .code()
                .map_or("a signal".into(), |c| c.to_string()),
            clip(&text)
        )
    }
}

#[allow(unused_variables, unreachable_code)]
async fn invoke(
    ctx: &CliSmoke,
    service: &Service,
    ids: &BTreeMap<String, String>,
    payload: &str,
    expect: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<String> {
    #[allow(unused_imports)]
    use deployer_core::manifest::Target;
    let answer: String = match &service.target {
        #[cfg(feature = "lambda")]
        Target::LambdaImage(deployer_core::manifest::LambdaTarget {
            function, alias, ..
        })
        | Target::LambdaZip(deployer_core::manifest::LambdaZipTarget {
            lambda:
                deployer_core::manifest::LambdaTarget {
                    function, alias, ..
                },
            ..
        }) => {
            let lambda = crate::aws::client!(aws_sdk_lambda, &ctx.sdk);
            let mut request = lambda
                .invoke()
                .function_name(function)
                .log_type(aws_sdk_lambda::types::LogType::Tail)
                .payload(aws_sdk_lambda::primitives::Blob::new(payload.as_bytes()));
            if let Some(alias) = alias {
                request = request.qualifier(alias);
            }
            let output = tokio::time::timeout(timeout, request.send())
                .await
                .map_err(|_| anyhow!("the invoke did not answer within {}s", timeout.as_secs()))?
                .map_err(|error| anyhow!("Invoke failed: {}", deployer_aws::error_line(&error)))?;
            let body = output
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default();
            if let Some(kind) = output.function_error() {
                let tail = log_tail(&lambda, function, output.log_result()).await;
                bail!("the function failed ({kind}): {}{tail}", clip(&body));
            }
            body
        }
        #[cfg(feature = "agentcore")]
        Target::Agentcore(target) => {
            let arn = deployer_agentcore::ids::runtime_arn(ids)
                .context("the rollout recorded no runtime ARN to invoke")?;
            // Through the first named endpoint, the one traffic uses, when there is one;
            // else `DEFAULT` (no qualifier).
            let qualifier = target.endpoints.first();
            let agentcore = crate::aws::client!(aws_sdk_bedrockagentcore, &ctx.sdk);
            // a session id of at least 33 characters, unique per check
            let session = format!("deployer-smoke-{}-{}", service.name, std::process::id())
                .chars()
                .chain(std::iter::repeat('0'))
                .take(40)
                .collect::<String>();
            let request = agentcore
                .invoke_agent_runtime()
                .agent_runtime_arn(arn)
                .runtime_session_id(session)
                .content_type("application/json")
                .payload(aws_sdk_bedrockagentcore::primitives::Blob::new(
                    payload.as_bytes(),
                ))
                .set_qualifier(qualifier.cloned());
            let output = tokio::time::timeout(timeout, request.send())
                .await
                .map_err(|_| anyhow!("the invoke did not answer within {}s", timeout.as_secs()))?
                .map_err(|error| {
                    anyhow!(
                        "InvokeAgentRuntime failed: {}",
                        deployer_aws::error_line(&error)
                    )
                })?;
            let bytes = output
                .response
                .collect()
                .await
                .map_err(|error| anyhow!("reading the answer failed: {error}"))?;
            String::from_utf8_lossy(&bytes.into_bytes()).into_owned()
        }
        _ => bail!("`invoke` smoke checks work for Lambda and AgentCore services"),
    };
    match expect {
        Some(expected) if !answer.contains(expected) => bail!(
            "the answer does not contain `{expected}`: {}",
            clip(&answer)
        ),
        _ => Ok(clip(&answer)),
    }
}

/// The last [`LOG_TAIL_LINES`] lines of an invoke's log (`LogType=Tail`: the base64 of its
/// last 4 KB), as `\nlog tail:\n  …` lines, the function's environment values redacted (they
/// are read only now, after a failure); empty when Lambda sent no log.
#[cfg(feature = "lambda")]
async fn log_tail(lambda: &aws_sdk_lambda::Client, function: &str, log: Option<&str>) -> String {
    use base64::Engine as _;
    let Some(bytes) =
        log.and_then(|log| base64::engine::general_purpose::STANDARD.decode(log).ok())
    else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let values: Vec<String> = match lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
    {
        Ok(config) => config
            .environment()
            .and_then(|env| env.variables())
            .map(|vars| vars.values().cloned().collect())
            .unwrap_or_default(),
        Err(error) => {
            return format!(
                "\nlog tail: unavailable (its redaction needs the function's environment: GetFunctionConfiguration failed: {})",
                deployer_aws::error_line(&error)
            );
        }
    };
    let redactor = deployer_aws::Redactor::new(values);
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    let mut tail = String::from("\nlog tail:");
    for line in &lines[skip..] {
        tail.push_str("\n  ");
        tail.push_str(&redactor.apply(line));
    }
    tail
}

/// Log lines of a failed invoke shown at most.
#[cfg(feature = "lambda")]
const LOG_TAIL_LINES: usize = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_secret() {
        let secrets = vec!["hunter22".to_owned(), "abc".to_owned()];
        assert_eq!(redact("token=hunter22; abc", &secrets), "token=***; abc");
    }

    #[test]
    fn output_is_clipped_on_a_char_boundary() {
        let long = "é".repeat(OUTPUT_LIMIT);
        assert!(clip(&long).ends_with(" …"));
    }
}
