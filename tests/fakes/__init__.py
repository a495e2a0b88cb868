"""Fake servers that speak real protocols on loopback, shared by the test suites."""
