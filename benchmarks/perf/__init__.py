"""Performance scripts: timing and memory checks of the core (run each as a script)."""
