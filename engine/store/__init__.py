"""What a run leaves on disk: the run directory's logs, checkpoint files, the Trainer's saved state."""
