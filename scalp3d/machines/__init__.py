"""Machine profiles shipped with scalp3d (TOML)."""
