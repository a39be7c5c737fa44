"""STCA Studio: entry page (run with `streamlit run app/Home.py`)."""
import streamlit as st

import stca_engine as se

st.set_page_config(page_title="STCA Studio", page_icon="⚡", layout="wide")

st.title("STCA Studio")
st.caption(f"stca_engine {se.__version__} · compute device: {se.describe_device()}")
st.markdown(
    "Train deep spiking neural networks with **STCA** (spatio-temporal credit assignment) on sound events, "
    "watch voltage traces, spike clusters and the k⁺/k⁻ points the loss picks, then detect events in your own recordings."
)
st.sidebar.markdown(f"**Device:** {se.describe_device()}")
