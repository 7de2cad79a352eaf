"""The web console of citybase: server-rendered pages over the four services' HTTP APIs."""
