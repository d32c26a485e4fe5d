"""Dashboard widgets, one class per file. Each is a view: the screen sets data, it draws."""
