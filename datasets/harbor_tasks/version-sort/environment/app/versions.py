"""Sort release version strings."""


def sort_versions(versions: list[str]) -> list[str]:
    """Versions in ascending order."""
    return sorted(versions)
