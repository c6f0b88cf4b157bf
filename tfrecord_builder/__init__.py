"""inat-build: the iNaturalist download → sharded TFRecords (see build.py)."""
