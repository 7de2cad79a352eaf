"""Principals (who calls the platform) and their API keys."""
