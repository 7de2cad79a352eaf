"""Datasets: what a department publishes, its topics, status and latest quality."""
