"""The paper whose method this package implements, cited the same way wherever output names it."""

PAPER = (
    "Abante J, Piga A, Ros B, López-León CF, Canals JM, Soriano J (2025). Single-neuron deep "
    "generative model uncovers underlying physics of neuronal activity in Ca imaging data"
)
PAPER_SHORT = "Abante et al. 2025"
