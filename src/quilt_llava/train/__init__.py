"""Stage C: two-stage training (alignment, instruction tuning) through accelerate."""
