def main(argv: list[str]) -> int:
    """Runs aserve with ``argv`` (program name first) and returns its exit status."""
