"""What the entry points run: the config check, process settings, the tasks in order, and their helpers."""
