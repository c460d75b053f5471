"""The Hugging Face Hub: `push` uploads a run's model, `roundtrip` loads it back and compares, and
`card` writes the model card that travels with it.
"""
