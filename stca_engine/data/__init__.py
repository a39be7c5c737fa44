"""Datasets: loaders for RWCP, MedleyDB, folders, images and uploads; streams; metrics; cache."""

from .types import Event, Sample, SpikeDataset, SpikeTrain

__all__ = ["Event", "Sample", "SpikeDataset", "SpikeTrain"]
