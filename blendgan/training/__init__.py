"""Training: trainers for the generator and the two encoders, their data, losses and run folders."""
