"""Results model and markdown rendering of a sessionbench run."""
