"""The app API: serves the web front end."""


def health() -> dict:
    return {"status": "ok"}
