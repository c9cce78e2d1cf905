"""hf layer."""
