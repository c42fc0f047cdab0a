"""The planning agent."""


def plan(prompt: str) -> list[str]:
    return [step.strip() for step in prompt.split(".") if step.strip()]
