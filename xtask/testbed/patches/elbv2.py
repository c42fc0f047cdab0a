"""Elastic Load Balancing v2: targets whose health checks fail.

What moto does alone
--------------------
``DescribeTargetHealth`` reports every registered IP or Lambda target ``healthy`` (an EC2
instance only turns ``unused`` when it is stopped): a load balancer never fails a health check,
so the diagnosis of a rollout whose new tasks never pass theirs cannot be exercised.

What this patch adds
--------------------
A target group tagged ``deployer-testbed:target-health = unhealthy`` reports each registered
target ``unhealthy`` with the reason and description AWS gives a target whose checks fail
(``Target.FailedHealthChecks``, "Health checks failed with these codes: [502]"); the tags
``deployer-testbed:target-health-reason`` and ``deployer-testbed:target-health-description``
choose others (e.g. ``Target.Timeout``, "Request timed out"). Targets that are not registered
keep moto's own answers. Used by ``tests/tests/e2e/diagnosis.rs``.
"""

from __future__ import annotations

from typing import Any

TAG = "deployer-testbed:target-health"
REASON_TAG = "deployer-testbed:target-health-reason"
DESCRIPTION_TAG = "deployer-testbed:target-health-description"
REASON = "Target.FailedHealthChecks"
DESCRIPTION = "Health checks failed with these codes: [502]"


def apply() -> None:
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus

    original = ELBv2Backend.describe_target_health

    def describe_target_health(
        self: Any, target_group_arn: str, targets: list[dict[str, Any]]
    ) -> list[Any]:
        statuses = original(self, target_group_arn, targets)
        tags = self.tagging_service.get_tag_dict_for_resource(target_group_arn)
        if tags.get(TAG) != "unhealthy":
            return statuses
        group = self.target_groups[target_group_arn]
        return [
            FakeHealthStatus(
                status.instance_id,
                status.port,
                status.health_check_port,
                "unhealthy",
                tags.get(REASON_TAG, REASON),
                tags.get(DESCRIPTION_TAG, DESCRIPTION),
            )
            if status.instance_id in group.targets
            else status
            for status in statuses
        ]

    ELBv2Backend.describe_target_health = describe_target_health
