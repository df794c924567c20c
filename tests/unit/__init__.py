"""Unit tests of the domain: pathway data, durations, labs, inputs and properties."""
