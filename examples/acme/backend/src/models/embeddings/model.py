"""The embeddings model served by the SageMaker endpoint; app-api calls it."""


def embed(text: str) -> list[float]:
    return [float(ord(c) % 7) for c in text[:16]]
