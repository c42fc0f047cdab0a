//! `deployer hash`: print each service's content tag.

use serde_json::json;

use crate::args::Global;
use crate::exit::Exit;
use crate::inputs::{self, ServiceTag};
use crate::output::Printer;

pub(crate) async fn run(
    global: &Global,
    names: &[String],
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let manifest = super::load_manifest(global)?;
    let services = super::select(&manifest, names)?;
    let tags = inputs::tags(&manifest, &services, inputs::Bases::AsConfigured).await?;
    let mut text = String::new();
    for tag in &tags {
        text.push_str(&format!("{:<24} {}\n", tag.service, tag.tag));
        warn_untracked(printer, tag);
    }
    let value = json!({ "services": tags });
    printer.result(&text, &value);
    Ok(Exit::Success)
}

fn warn_untracked(printer: &Printer, tag: &ServiceTag) {
    if tag.untracked.is_empty() {
        return;
    }
    const SHOWN: usize = 10;
    let mut list: Vec<&str> = tag
        .untracked
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect();
    if tag.untracked.len() > SHOWN {
        list.push("…");
    }
    printer.warn(&format!(
        "service `{}`: {} untracked file(s) under its inputs are not part of the hash (git add them, or ignore them): {}",
        tag.service,
        tag.untracked.len(),
        list.join(", ")
    ));
}
