"""Ingests documents into the retrieval index."""


def handler(event, context):
    return {"ingested": len(event.get("documents", []))}
