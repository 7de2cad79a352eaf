"""The shared kernel: settings, bus, envelope, database, auth, metrics, problem errors."""
