"""How the engine is talked to: the command and event vocabulary and the channel. Imports no torch."""
