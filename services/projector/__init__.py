"""The projectors: fold the log into the stored views, rebuild them, write as-of snapshots."""
