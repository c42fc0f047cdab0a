"""The inference API: runs the agents on Bedrock AgentCore."""

from agents.planner import plan


def invoke(payload: dict) -> dict:
    return {"plan": plan(payload.get("prompt", ""))}
