"""The domain core: plain Python, no framework, no database."""
