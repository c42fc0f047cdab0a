"""Renders artifacts (zipped directly: no image, no Docker)."""


def handler(event, context):
    return {"rendered": event.get("artifact", "none")}
