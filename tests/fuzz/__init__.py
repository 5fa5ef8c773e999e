"""Fuzzing of the network decoders: a mutation engine, its targets, and the short CI run."""
