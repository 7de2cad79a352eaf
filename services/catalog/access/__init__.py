"""Authorized operation: scenarios, access requests with a purpose, and the grants feeds enforce."""
