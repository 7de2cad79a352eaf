"""The evaluation of scenarios: the objectives a scenario commits to for a period, the outcomes it
reports, and the evaluators' verdicts, each audited and announced on ``platform.catalog``; and the
verification of a saved evaluation report against the audit trail."""
