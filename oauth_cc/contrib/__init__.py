"""Both sides: integrations with other frameworks."""
