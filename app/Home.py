"""STCA Studio: entry page (run with `streamlit run app/Home.py`): what each page is for, in plain words.

Streamlit puts this file's folder, app/, on ``sys.path`` for every page, so pages import the app's
modules (``state``, ``components``, ``figures``, ...) directly, without path edits of their own.
"""

from pathlib import Path

import streamlit as st
from components import setup_page

import stca_engine as se

setup_page("Home")

st.title("⚡ STCA Studio")
st.caption(f"stca_engine {se.__version__} · compute device: {se.describe_device()}")
st.markdown(
    "Train deep spiking neural networks with **STCA** (spatio-temporal credit assignment) on sound events, "
    "watch voltage traces, spike clusters and the k⁺/k⁻ points the loss picks, then detect events in your own "
    "recordings."
)

PAGES = [
    (
        "pages/1_Data.py",
        ":material/graphic_eq:",
        "1 · Data",
        "Listen to the sounds and see how they become **spikes**. Pick the built-in demo set, a dataset folder or your "
        "own recordings; look at the waveform, the spectrogram and the **spikegram** – the spike pattern the network "
        "actually hears. Change the encoder settings and watch the spikes change.",
    ),
    (
        "pages/2_Train.py",
        ":material/model_training:",
        "2 · Train",
        "Teach a network to recognise the sounds. Every epoch you see the loss and accuracy curves and, for one example, "
        "each output neuron's **voltage** with its spikes, the shaded **spike clusters** and the **k⁺ / k⁻** points "
        "where STCA pushes the voltage up or down. Compare STCA with the older TDP1 rule side by side.",
    ),
    (
        "pages/3_Detect.py",
        ":material/search:",
        "3 · Detect",
        "Use a trained network as a **sound-event detector**: upload a recording (or take a demo stream) and see when "
        "each class was heard, on the waveform and the spectrogram, in a table you can download as CSV.",
    ),
    (
        "pages/4_Neuron_playground.py",
        ":material/science:",
        "4 · Neuron playground",
        "Play with **one neuron**. Move sliders for its time constants, threshold and input, and see the traces M, S, E "
        "and V of the paper's Figure 1. Ask for a number of clusters and press *update* to watch one learning step "
        "move the voltage.",
    ),
]

app_dir = Path(__file__).resolve().parent
for row in (PAGES[:2], PAGES[2:]):  # one st.columns per row so the cards of a row start level
    for col, (page, icon, name, text) in zip(st.columns(2, gap="large"), row):
        with col.container(border=True):
            st.subheader(f"{icon} {name}")
            st.markdown(text)
            if (app_dir / page).exists():
                st.page_link(page, label=f"Open {name.split('· ')[1]}", icon=":material/arrow_forward:")

with st.expander("STCA in one minute", icon=":material/lightbulb:", expanded=False):
    st.markdown(
        "- A **spiking neuron** adds up input spikes into a voltage **V**. When V reaches the threshold **ϑ** it fires "
        "a spike and resets.\n"
        "- A sound event makes a short **burst** of output spikes. STCA counts **spike clusters** (spikes closer "
        "than T_in belong together), not single spikes, so one burst = one detected event.\n"
        "- If a neuron fires **too few** clusters, STCA finds the best moment to fire another one (**k⁺**) and "
        "raises V there; if it fires **too many**, it lowers V at the weakest cluster (**k⁻**).\n"
        "- That error is sent back through time and through the layers (credit assignment in space and time) "
        "to change the weights."
    )

st.markdown(
    "**Classroom quick start:** open *Neuron playground* to explain one neuron → *Data* to hear the demo "
    "sounds → *Train* with the *classroom-fast* preset → *Detect* on a demo stream."
)
