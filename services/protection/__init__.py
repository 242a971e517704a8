"""Who may do what, and what protects the data: roles and tokens, audit, reveal, erasure."""
