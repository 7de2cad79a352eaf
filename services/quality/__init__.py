"""citybase quality: Quality and utilization: per-dataset scores over windows of the stream (validity, completeness, uniqueness, conformity, timeliness) and utilization from metering."""
