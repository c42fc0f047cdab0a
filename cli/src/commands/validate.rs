//! `deployer validate`: check the manifest, that every image service's tag can be computed
//! and covers what its Dockerfile copies (exit 2 naming the uncovered file, the Dockerfile line
//! and the glob that would cover it), and that every config service's sources are valid
//! (exit 2 naming each file, line and failing schema rule).

use serde_json::json;

use crate::args::Global;
use crate::exit::Exit;
use crate::output::Printer;

pub(crate) async fn run(
    global: &Global,
    names: &[String],
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let manifest = super::load_manifest(global)?;
    let services = super::select(&manifest, names)?;
    let images: Vec<&deployer_core::Service> = services
        .iter()
        .copied()
        .filter(|s| s.image.is_some() || s.kind == deployer_core::Kind::Config)
        .collect();
    if !images.is_empty() {
        crate::inputs::tags(&manifest, &images, crate::inputs::Bases::AsWritten).await?;
    }
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
