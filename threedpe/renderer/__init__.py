"""The EG3D triplane renderer of 3DPE: ray sampling, triplane lookup, OSG decoder, ray marching, superresolution."""
from threedpe.renderer.renderer import RenderOptions, TriplaneRenderer, check_state_dict

__all__ = ["RenderOptions", "TriplaneRenderer", "check_state_dict"]
