"""The dashboard screen and its modal dialogs."""
