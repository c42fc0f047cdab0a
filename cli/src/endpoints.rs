//! AgentCore named endpoints (`endpoints = ["prod", …]`) as `status` and `plan` show them: per
//! endpoint its status, the version it serves (`live_version`) and the version it should serve
//! (`target_version`), from the live state's ids (`deployer_agentcore::ids`).

use std::collections::BTreeMap;

use deployer_core::Service;
use serde::Serialize;

/// One named endpoint, for `--json` and the text lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct EndpointView {
    pub(crate) name: String,
    pub(crate) status: Option<String>,
    /// The version serving requests now.
    pub(crate) live_version: Option<String>,
    /// `status`: the version it should serve (the recorded deploy's, else the one AgentCore
    /// is moving it to). `plan`: the version a deploy moves it to; `None` when that is the
    /// version the runtime update will make.
    pub(crate) target_version: Option<String>,
}

impl EndpointView {
    /// `endpoint prod: live version 2, target version 3 (READY)`.
    pub(crate) fn line(&self) -> String {
        format!(
            "endpoint {}: live version {}, target version {} ({})",
            self.name,
            self.live_version.as_deref().unwrap_or("none"),
            self.target_version
                .as_deref()
                .unwrap_or("the runtime's next version"),
            self.status.as_deref().unwrap_or("unknown")
        )
    }
}

/// The named endpoints of `service` in manifest order, as `ids` (a live state's) report them;
/// each one's target is `target(endpoint's own target version)`. Empty for other kinds.
#[cfg_attr(not(feature = "agentcore"), allow(unused_variables))]
pub(crate) fn views(
    service: &Service,
    ids: &BTreeMap<String, String>,
    target: impl Fn(Option<&str>) -> Option<String>,
) -> Vec<EndpointView> {
    #[cfg(feature = "agentcore")]
    if let deployer_core::manifest::Target::Agentcore(agentcore) = &service.target {
        let live = deployer_agentcore::ids::endpoints(ids);
        return agentcore
            .endpoints
            .iter()
            .map(|name| {
                let found = live.iter().find(|e| &e.name == name);
                EndpointView {
                    name: name.clone(),
                    status: found.and_then(|e| e.status.clone()),
                    live_version: found.and_then(|e| e.live_version.clone()),
                    target_version: target(found.and_then(|e| e.target_version.as_deref())),
                }
            })
            .collect();
    }
    Vec::new()
}

/// The runtime version in a live state's ids.
pub(crate) fn runtime_version(ids: &BTreeMap<String, String>) -> Option<String> {
    #[cfg(feature = "agentcore")]
    return ids.get(deployer_agentcore::ids::VERSION).cloned();
    #[cfg(not(feature = "agentcore"))]
    {
        let _ = ids;
        None
    }
}
