"""SSM Parameter Store.

Nothing planned yet: moto's parameters (versions, overwrite, paths) are used as they are.
"""


def apply() -> None:
    """Nothing yet: moto's own behaviour is used as is."""
