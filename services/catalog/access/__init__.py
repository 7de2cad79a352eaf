"""Authorized operation: scenarios, access requests with a purpose, and the grants feeds enforce.

``scenarios`` (a scenario's life and keys) uses ``requests`` (ask, approve, reject, withdraw),
which make ``grants`` (terms, status, masking by the contract); all check their ``terms`` against
the current contract and ask ``policy`` who may do what; ``context`` holds what every change works
with. Imports run in that order (an import-linter contract).
"""
