"""Scenario tests: one patient driven through the pathway, named by expected outcome."""
