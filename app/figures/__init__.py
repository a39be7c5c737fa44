"""Plotly figures for STCA Studio: pure functions from numpy data to ``plotly.graph_objects.Figure``
(no Streamlit inside), so they are tested without a browser and reused by every page.

Pages put ``app/`` on ``sys.path`` and import ``from figures import output_traces`` etc.
"""

from .audio import detection_timeline, spectrogram, waveform
from .curves import learning_curves, weight_histogram, weight_stats, weight_stats_record
from .rasters import hidden_raster, spike_raster
from .style import PALETTE, class_color
from .traces import neuron_traces, output_traces

__all__ = [
    "output_traces",
    "neuron_traces",
    "spike_raster",
    "hidden_raster",
    "learning_curves",
    "weight_stats",
    "weight_stats_record",
    "weight_histogram",
    "waveform",
    "spectrogram",
    "detection_timeline",
    "PALETTE",
    "class_color",
]
