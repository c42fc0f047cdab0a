//! The manifest's `blue_green` as SageMaker's `DeploymentConfig`.

use std::time::Duration;

use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType,
    DeploymentConfig, TrafficRoutingConfig, TrafficRoutingConfigType,
};
use deployer_core::manifest::{BlueGreen, Traffic};

/// Whole seconds, saturating (SageMaker validates the ranges itself and says which is wrong).
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

fn percent(value: u8) -> CapacitySize {
    CapacitySize::builder()
        .r#type(CapacitySizeType::CapacityPercent)
        .value(i32::from(value))
        .build()
}

/// `DeploymentConfig`: a blue/green update with the traffic routing, wait interval, termination
/// wait and maximum execution timeout given, and auto-rollback on the given alarms.
pub(crate) fn deployment_config(blue_green: &BlueGreen) -> DeploymentConfig {
    let routing =
        TrafficRoutingConfig::builder().wait_interval_in_seconds(seconds(blue_green.wait_interval));
    let routing = match blue_green.traffic {
        Traffic::AllAtOnce => routing.r#type(TrafficRoutingConfigType::AllAtOnce),
        Traffic::Canary { percent: p } => routing
            .r#type(TrafficRoutingConfigType::Canary)
            .canary_size(percent(p)),
        Traffic::Linear { percent: p } => routing
            .r#type(TrafficRoutingConfigType::Linear)
            .linear_step_size(percent(p)),
    };
    let policy = BlueGreenUpdatePolicy::builder()
        .traffic_routing_configuration(routing.build())
        .set_termination_wait_in_seconds(blue_green.termination_wait.map(seconds))
        .set_maximum_execution_timeout_in_seconds(blue_green.max_execution.map(seconds))
        .build();
    let rollback = (!blue_green.rollback_alarms.is_empty()).then(|| {
        AutoRollbackConfig::builder()
            .set_alarms(Some(
                blue_green
                    .rollback_alarms
                    .iter()
                    .map(|name| Alarm::builder().alarm_name(name).build())
                    .collect(),
            ))
            .build()
    });
    DeploymentConfig::builder()
        .blue_green_update_policy(policy)
        .set_auto_rollback_configuration(rollback)
        .build()
}
