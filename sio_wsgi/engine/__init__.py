"""Internal package; see docs/DESIGN.md."""
