"""``make soak``: the platform under a steady load for minutes, watched for growth and errors."""
