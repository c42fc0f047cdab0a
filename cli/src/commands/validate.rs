//! `deployer validate`: check the manifest.

use serde_json::json;

use crate::args::Global;
use crate::exit::Exit;
use crate::output::Printer;

pub(crate) fn run(global: &Global, names: &[String], printer: &Printer) -> anyhow::Result<Exit> {
    let manifest = super::load_manifest(global)?;
    let services = super::select(&manifest, names)?;
    let mut text = format!(
        "{}: valid ({} service{})\n",
        manifest.path.display(),
        services.len(),
        if services.len() == 1 { "" } else { "s" }
    );
    for service in &services {
        text.push_str(&format!("  {:<24} {}\n", service.name, service.kind));
    }
    let value = json!({
        "manifest": manifest.path,
        "project": manifest.project.name,
        "valid": true,
        "services": services.iter().map(|s| json!({"service": s.name, "kind": s.kind})).collect::<Vec<_>>(),
    });
    printer.result(&text, &value);
    Ok(Exit::Success)
}
