"""danlu's terminal UI. Importing this package loads neither textual nor torch."""
