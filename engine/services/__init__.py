"""The service layer: one function per use case; every entry point calls these."""
