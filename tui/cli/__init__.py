"""The command line and the headless front end. Imports neither textual nor torch."""
