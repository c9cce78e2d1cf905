"""meter layer."""
