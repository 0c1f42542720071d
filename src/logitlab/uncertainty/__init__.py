"""What a probability is worth: conformal prediction sets and selective prediction."""
