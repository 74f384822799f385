"""Evaluations of trained latent-action world models: capacity, leakage, transfer, probes, locality."""
