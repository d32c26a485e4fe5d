"""danlu's training engine: PyTorch only, never imports the UI."""
