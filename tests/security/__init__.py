"""Security tests: authentication, authorisation, and secrets kept out of logs."""
