"""The EG3D triplane renderer of 3DPE: ray sampling, triplane lookup, OSG decoder, ray marching, superresolution."""
from threedpe.renderer.renderer import RenderOptions, TriplaneRenderer

__all__ = ["RenderOptions", "TriplaneRenderer"]
