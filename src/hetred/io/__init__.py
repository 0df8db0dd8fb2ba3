"""Reading raw VIRUS data and writing products atomically."""
