"""Builders: the data, model, optimizer, LR schedule and device a config names."""
