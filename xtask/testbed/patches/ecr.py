"""ECR.

Nothing planned yet: moto's repositories, images and authorization tokens are used as they are.
"""


def apply() -> None:
    """Nothing yet: moto's own behaviour is used as is."""
