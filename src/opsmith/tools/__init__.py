"""Ports through which opsmith acts on the world, and their adapters."""
