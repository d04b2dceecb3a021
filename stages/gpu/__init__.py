"""The frame operations of the hot path in torch, so a GPU engine's frames stay on the GPU: upload once, warp
the crop, feather the render's mask, paste, download the finished frame. The same code runs on CPU tensors
(that is how the tests compare it with the NumPy/OpenCV versions in stages/face and stages/composite)."""
