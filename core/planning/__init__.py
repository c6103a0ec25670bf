"""What fits this machine: hardware probe, memory model, planner, fit labels."""
