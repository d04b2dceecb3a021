"""The 3DPE network: encoders, EG3D triplane renderer, superresolution, cameras, checkpoints."""
