"""Privilege separation: the root monitor and the unprivileged network process."""
