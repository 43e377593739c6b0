"""Fingerprints: token shingles, MinHash signatures and the LSH candidate index."""
